"""`fastcam-course`: the course it builds opened in a real browser (headless Debian Chromium, skipped where it is missing):
its handouts and its slide decks; its student notebooks checked; and its promises: same seed, same numbers and figures; a
real lecture builds at another seed; a failing lecture stops it with a message naming the lecture and cell; every bad path,
file or option stops it with one line and exit code 2.

`tools/test` builds the whole course once and passes its folder in FASTCAM_COURSE, so the browser checks every real handout
without running the lectures again; without FASTCAM_COURSE this file builds a tiny course of its own."""
import base64, json, os, re, subprocess, time
from pathlib import Path
from urllib.parse import unquote, urlparse
import nbformat
import pytest
from nbformat.v4 import new_notebook, new_markdown_cell, new_code_cell

root = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get('FASTCAM_CHROMIUM') or '/usr/bin/chromium')  # Debian's packages chromium and chromium-driver
DRIVER = Path(os.environ.get('FASTCAM_CHROMEDRIVER') or '/usr/bin/chromedriver')
ARTIFACTS = Path(os.environ.get('FASTCAM_ARTIFACTS') or root/'test-artifacts')

def tiny_lectures(d):
    """Small lecture notebooks in folder `d`: 01 has maths, a figure, a hidden cell, a seeded number, a questionnaire and
    exercises with solutions (one draws a figure); 02 fails at its third cell"""
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# A tiny lecture\n\n> Maths, a figure and a seeded number"),
        new_markdown_cell(r"The score is $y_c = \sum_k w_{ck} F_k$, and $$\alpha^c_k = \frac{1}{Z}\sum_{i,j} A^k_{ij}$$ while `$HOME` is code."),
        new_code_cell("#| hide\nfrom fastcam.course import lecture_settings\nimport random, numpy as np, matplotlib.pyplot as plt"),
        new_code_cell("s = lecture_settings()\nprint(s.offline, s.full, s.seed, random.random(), np.random.rand())"),
        new_code_cell("plt.plot(np.random.rand(5));"),
        new_markdown_cell("## Next\n\nSee [this lecture](01_tiny.ipynb), [this section](#Next) and [the web](https://docs.fast.ai)."),
        new_markdown_cell("## Questionnaire\n\n" + "\n".join(f"{k}. Why does question {k} end with a question mark?" for k in range(1, 9))),
        new_markdown_cell("## Exercises\n\n### Exercise 1: More points\n\nPlot ten random numbers instead of five."),
        new_code_cell("#| solution\nplt.plot(np.random.rand(10));"),
        new_markdown_cell("### Exercise 2: Your own photo\n\nWhat changes with your own photo?"),
        new_markdown_cell("<!-- solution -->\nThe answer of exercise 2."),
        new_markdown_cell("### Exercise 3: The seed\n\nRun it twice: what stays the same?"),
        new_code_cell("#| solution\nprint('the printed numbers and the figure')")]), d/'01_tiny.ipynb')
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Broken"), new_code_cell("x = 1"), new_code_cell("#| hide\ny = x/0")]),
                   d/'02_broken.ipynb')
    return d

def course_cmd(*args):
    return subprocess.run(['fastcam-course', *map(str, args)], capture_output=True, text=True, timeout=1800)

def printed(course, name):
    "What the lecture `name` of `course` printed (stdout of every cell) and its figures' bytes"
    nb = nbformat.read(Path(course)/'notebooks'/f'{name}.ipynb', as_version=4)
    text = ''.join(o.get('text', '') for c in nb.cells if c.cell_type=='code' for o in c.outputs if o.output_type=='stream')
    return text, [f.read_bytes() for f in sorted((Path(course)/'figures'/name).glob('*.png'))]

@pytest.fixture(scope='module')
def lectures(tmp_path_factory): return tiny_lectures(tmp_path_factory.mktemp('lectures'))

def test_same_seed_same_numbers_and_figures(lectures, tmp_path):
    for out,seed in [('a', 7), ('b', 7), ('c', 8)]:
        r = course_cmd('--path', lectures, '--lectures', '01', '--offline', '--seed', seed, '--out', tmp_path/out)
        assert r.returncode == 0, r.stderr[-3000:]
    src = [c.source for c in nbformat.read(lectures/'01_tiny.ipynb', as_version=4).cells]
    assert [c.source for c in nbformat.read(tmp_path/'a'/'notebooks'/'01_tiny.ipynb', as_version=4).cells] == src  # the lecture, nothing added
    a, b, c = (printed(tmp_path/o, '01_tiny') for o in 'abc')
    assert a[0].split()[:3] == ['True', 'False', '7'] and len(a[1]) == 2  # the settings reach the kernel: offline, CPU-sized, the seed
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]  # the seed reaches the kernel: Python's and numpy's generators, the figure

def one_line_error(r, code=2):
    "The command stopped with exit code `code` and one line on stderr, no traceback; returns that line"
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    return lines[0]

def test_a_failing_lecture_is_named_with_its_cell(lectures, tmp_path):
    line = one_line_error(course_cmd('--path', lectures, '--out', tmp_path), code=1)
    assert ("fastcam-course: lecture 02_broken failed at cell 3 of 3 (`y = x/0`): ZeroDivisionError: division by zero." in line
            and str(tmp_path/'failed'/'02_broken.ipynb') in line), line
    assert (tmp_path/'01_tiny.html').exists() and not (tmp_path/'02_broken.html').exists()  # lectures run in order, it stops at the first failure
    assert 'ZeroDivisionError' in (tmp_path/'failed'/'02_broken.ipynb').read_text()

def test_bad_paths_files_and_options(lectures, tmp_path):
    "Each bad path, file or option: one line naming the problem and the fix, exit code 2, before anything is written"
    (tmp_path/'file').write_text('x')
    (tmp_path/'empty').mkdir()
    (tmp_path/'bad').mkdir()
    (tmp_path/'bad'/'01_bad.ipynb').write_text('{"cells": [')
    out, tiny = tmp_path/'out', ['--path', lectures, '--lectures', '01']
    cases = [(['--path', lectures, '--lectures', '09', '--out', out], "fastcam-course: No lecture '09'; choose among 01_tiny, 02_broken"),
             (['--path', tmp_path/'nowhere', '--out', out], f"No lectures folder {tmp_path/'nowhere'}: give a folder of lecture notebooks"),
             (['--path', tmp_path/'file', '--out', out], f"{tmp_path/'file'} is not a folder: give the folder of the lecture notebooks"),
             (['--path', tmp_path/'empty', '--out', out], f"No lecture notebooks (.ipynb) in {tmp_path/'empty'}: give the folder that holds them"),
             (['--path', tmp_path/'bad', '--out', out], f"{tmp_path/'bad'/'01_bad.ipynb'} is not a Jupyter notebook (JSONDecodeError"),
             ([*tiny, '--out', tmp_path/'file'], f"--out {tmp_path/'file'} is a file: give a folder"),
             ([*tiny, '--out', tmp_path/'file'/'course'], f"--out {tmp_path/'file'/'course'} is inside {tmp_path/'file'}, which is a file: give a folder"),
             ([*tiny, '--out', out, '--data', tmp_path/'nowhere'], "--data must be a Pets folder named oxford-iiit-pet with an images folder"),
             ([*tiny, '--out', out, '--seed', -1], "fastcam-course: --seed -1 is out of range: give a seed from 0 to 4294967295"),
             ([*tiny, '--out', out, '--seed', 2**32], "--seed 4294967296 is out of range"),
             ([*tiny, '--out', out, '--timeout', 0], "fastcam-course: --timeout 0: give the seconds a cell may run, more than 0")]
    for args, msg in cases:
        line = one_line_error(course_cmd(*args))
        assert msg in line, (args, line)
    for args, msg in [([*tiny, '--seed', 'abc'], "argument --seed: invalid int value: 'abc'"), ([*tiny, '--nonsense'], 'unrecognized arguments: --nonsense')]:
        r = course_cmd(*args, '--out', out)  # argparse's own errors: its usage line, then the error, exit code 2
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert not out.exists()

def test_missing_reveal_js(lectures, tmp_path):
    "Without the reveal.js files (a sphinx_revealjs that ships none shadows the real one): one line naming the extra, exit code 1"
    (tmp_path/'shadow'/'sphinx_revealjs').mkdir(parents=True)
    (tmp_path/'shadow'/'sphinx_revealjs'/'__init__.py').write_text('')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(tmp_path/'shadow'), os.environ.get('PYTHONPATH')]))}
    r = subprocess.run(['fastcam-course', '--path', lectures, '--out', tmp_path/'out'], capture_output=True, text=True, timeout=300, env=env)
    assert "reveal.js, which the sphinx-revealjs package ships: install the course extra, pip install 'fastcam[course]'" in one_line_error(r, code=1)

def test_a_real_lecture_at_another_seed(tmp_path, pets):
    """`fastcam-course --seed 7` builds a fast real lecture with everything it writes: the fastest lecture of the course
    tools/test built (FASTCAM_COURSE), or lecture 02 (96 s on 2 cores in the build of December 2026, where 04 and 06 took 52 s)"""
    name = '02'
    if os.environ.get('FASTCAM_COURSE'):
        name = min(json.loads((Path(os.environ['FASTCAM_COURSE'])/'course.json').read_text())['lectures'], key=lambda l: l['seconds'])['name']
    r = course_cmd('--lectures', name, '--seed', 7, '--offline', '--data', pets, '--out', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'course.json').read_text())
    assert m['settings']['seed'] == 7 and len(m['lectures']) == 1 and m['lectures'][0]['name'].startswith(name.split('_')[0])
    l = m['lectures'][0]
    for f in [l['html'], l['slides'], l['student'], l['notebook'], *l['figures']]: assert (tmp_path/f).stat().st_size > 0, f
    assert l['figures'], 'a real lecture draws figures'

# ---- in the browser

@pytest.fixture(scope='module')
def tiny_course(lectures, tmp_path_factory):
    "The tiny lecture's course, built here: it has the questionnaire, exercises and solutions the checks need"
    out = tmp_path_factory.mktemp('course')
    r = course_cmd('--path', lectures, '--lectures', '01', '--out', out, '--offline')
    assert r.returncode == 0, r.stderr[-3000:]
    return out

@pytest.fixture(scope='module')
def course(tiny_course):
    "The course folder tools/test built (FASTCAM_COURSE), or the tiny course"
    if os.environ.get('FASTCAM_COURSE'):
        p = Path(os.environ['FASTCAM_COURSE'])
        assert (p/'index.html').exists() and (p/'course.json').exists(), f"FASTCAM_COURSE={p} holds no course"
        return p
    return tiny_course

@pytest.fixture(scope='module')
def courses(course, tiny_course):
    "The real course when tools/test built one, and the tiny course, each with its manifest"
    return [(c, json.loads((c/'course.json').read_text())) for c in dict.fromkeys([course, tiny_course])]

def solution(cell)->bool:
    "A solution cell, by the course's convention: first line `#| solution` (code) or `<!-- solution -->` (markdown)"
    first = next((l.strip() for l in cell.source.splitlines() if l.strip()), '')
    return bool(re.fullmatch(r'#\|\s*solution', first) if cell.cell_type == 'code' else re.fullmatch(r'<!--\s*solution\s*-->', first))

def test_student_notebooks(courses):
    "Each student notebook is its lecture without the solution cells, and without outputs; the questions and exercises are kept"
    for course, m in courses:
        for l in m['lectures']:
            lecture, student = (nbformat.read(course/l[k], as_version=4) for k in ('notebook', 'student'))
            assert [(c.cell_type, c.source) for c in student.cells] == [(c.cell_type, c.source) for c in lecture.cells if not solution(c)]
            assert not any(c.get('outputs') or c.get('execution_count') for c in student.cells), l['student']
    tiny = nbformat.read(courses[-1][0]/'student'/'01_tiny.ipynb', as_version=4)
    text = '\n'.join(c.source for c in tiny.cells)
    assert len(tiny.cells) == len(nbformat.read(courses[-1][0]/'notebooks'/'01_tiny.ipynb', as_version=4).cells) - 3
    assert '## Questionnaire' in text and all(f'{k}. Why does question {k} end' in text for k in range(1, 9))
    assert all(f'### Exercise {k}:' in text for k in (1, 2, 3)) and 'rand(10)' not in text and 'The answer of exercise 2' not in text
    assert courses[-1][1]['lectures'][0]['practice'] == dict(questions=8, exercises=3, solutions=3)

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    "Headless Debian Chromium driven by selenium through Debian's chromedriver (never a downloaded browser)"
    if not (CHROMIUM.exists() and DRIVER.exists()): pytest.skip('Chromium is missing: apt-get install chromium chromium-driver')
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.chrome.service import Service
    os.environ['SE_OFFLINE'] = 'true'  # selenium's driver manager must not look for a browser or driver to download
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--window-size=1280,1000',
              f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}']:
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()

_page_js = r"""
const md = [...document.querySelectorAll('.jp-RenderedMarkdown')];
return {
  ready: document.readyState, title: document.title, text: document.body.innerText.length,
  h1: [...document.querySelectorAll('h1')].map(h => h.innerText),
  images: [...document.images].map(i => ({src: i.src.slice(0, 50), ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  external: [...document.querySelectorAll('script[src], link[href], img[src], iframe[src], source[src]')]
              .map(e => e.src || e.href).filter(u => /^(https?:)?\/\//.test(u)),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  maths: [...document.querySelectorAll('math')].map(m => { const r = m.getBoundingClientRect();
              return {w: r.width, h: r.height, display: getComputedStyle(m).display}; }),
  prose: (md.length ? md : [document.body]).map(e => e.innerText).join('\n'),
};"""

def page_problems(driver, page:Path, r:dict)->list:
    "What is wrong with the open `page` (`r` from `_page_js`) that is wrong on any page: a broken link or anchor, anything from the network, raw maths, a console error"
    name, bad = page.name, []
    bad += [f"{name}: image {i['src']}... has no natural size" for i in r['images'] if not i['ok']]
    for url in r['links']:
        u = urlparse(url)
        if u.scheme in ('http', 'https', 'mailto'): continue  # the web: not reachable here
        if u.scheme != 'file': bad.append(f"{name}: link {url}"); continue
        p = Path(unquote(u.path))
        if not p.exists(): bad.append(f"{name}: broken link {url}")
        elif p == page and u.fragment and not u.fragment.startswith('/') and unquote(u.fragment) not in r['ids']:
            bad.append(f"{name}: link to a missing anchor {url}")
    bad += [f"{name}: loads {u} from the network" for u in r['external']]
    bad += [f"{name}: requested {u}" for u in r['resources'] if not u.startswith(('file:', 'data:'))]
    raw = re.findall(r'\$\$.+?\$\$|\$[^$\s][^$\n]*?\$|\\(?:frac|sum|alpha|partial|mathrm|text|lVert)\b', r['prose'])
    bad += [f"{name}: maths left as raw text: {m[:60]}" for m in raw]
    bad += [f"{name}: console {e['level']}: {e['message'][:200]}" for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    return bad

def open_page(driver, page:Path, timeout:float=60):
    "Open `page` and wait until the browser shows it fully parsed (on a loaded machine `get` can return before a large handout is)"
    driver.get(page.as_uri())
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        here = unquote(driver.current_url.split('#')[0])   # reveal.js writes the slide into the fragment
        if here == unquote(page.as_uri()) and driver.execute_script('return document.readyState') == 'complete': return
        time.sleep(0.2)
    raise AssertionError(f"{page.name}: not shown fully parsed after {timeout:.0f} s (the browser is at {driver.current_url}, "
                         f"readyState {driver.execute_script('return document.readyState')!r})")

def check_page(driver, page:Path)->tuple:
    "Open `page` and return (what the page reports, the problems found)"
    open_page(driver, page)
    r = driver.execute_script(_page_js)
    name, bad = page.name, []
    if r['ready'] != 'complete' or not r['title'] or r['text'] < 100: bad.append(f"{name}: did not load ({r['ready']}, title {r['title']!r}, {r['text']} characters)")
    bad += [f"{name}: maths not rendered as MathML ({m})" for m in r['maths'] if m['w'] <= 0 or m['h'] <= 0 or 'math' not in m['display']]
    return r, bad + page_problems(driver, page, r)

def test_course_in_chromium(browser, course):
    "The index and every handout load, with every image drawn, no broken link, nothing from the network and all maths as MathML"
    manifest = json.loads((course/'course.json').read_text())
    assert manifest['lectures'], 'the course has no lecture'
    r, bad = check_page(browser, course/'index.html')
    linked = {Path(unquote(urlparse(u).path)).name for u in r['links']}
    assert {l['html'] for l in manifest['lectures']} <= linked, 'the index must link every handout'
    maths = 0
    for l in manifest['lectures']:
        r, b = check_page(browser, course/l['html'])
        bad += b
        maths += len(r['maths'])
        assert any(l['title'] in h for h in r['h1']) and r['title'] == l['title'], f"{l['html']}: title {r['title']!r}, headings {r['h1']}"
        assert len(r['images']) >= len(l['figures']) > 0, f"{l['html']}: {len(r['images'])} images for {len(l['figures'])} figures"
        assert all((course/f).stat().st_size > 1000 for f in l['figures'])
    assert not bad, '\n'.join(bad)
    assert maths > 0, 'no maths in the course: the MathML check checked nothing'

def test_screenshot_of_lecture_1(browser, course):
    "A full-page screenshot of the first lecture's handout, kept in test-artifacts/ (CI uploads it)"
    from PIL import Image
    first = json.loads((course/'course.json').read_text())['lectures'][0]
    open_page(browser, course/first["html"])
    size = browser.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
    clip = dict(x=0, y=0, width=size['width'], height=min(size['height'], 15000), scale=1)
    shot = browser.execute_cdp_cmd('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True, 'clip': clip})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    f = ARTIFACTS/'lecture1.png'
    f.write_bytes(base64.b64decode(shot['data']))
    im = Image.open(f)
    assert im.width >= 800 and im.height >= min(size["height"], 15000) - 2 > 400  # the whole page (up to 15000 px)
    assert len(set(im.convert('L').resize((64, 256)).getdata())) > 20  # not a blank page

_deck_js = r"""
const res = {total: Reveal.getTotalSlides(), horizontal: Reveal.getHorizontalSlides().length, visited: 0, wrong: [],
             images: 0, badImages: [], maths: 0, badMaths: [], figureAt: null};
for (const s of Reveal.getSlides()) {
  const i = Reveal.getIndices(s);
  Reveal.slide(i.h, i.v);
  if (Reveal.getCurrentSlide() !== s) { res.wrong.push([i.h, i.v]); continue; }
  res.visited++;
  for (const img of s.querySelectorAll('img')) {
    const r = img.getBoundingClientRect();
    if (img.complete && img.naturalWidth > 0 && r.width > 20 && r.height > 20) { res.images++; if (!res.figureAt) res.figureAt = [i.h, i.v]; }
    else res.badImages.push([i.h, i.v, img.naturalWidth, r.width, r.height]);
  }
  for (const m of s.querySelectorAll('math')) {
    const r = m.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) res.maths++; else res.badMaths.push([i.h, i.v]);
  }
}
res.headings = Reveal.getHorizontalSlides().map(h => ((h.querySelector('h1, h2') || {}).textContent || '').replace('¶', '').trim());
Reveal.slide(0, 0);
return res;"""

def hidden(cell)->bool: return bool(re.search(r'^\s*#\|\s*hide\b', cell.source, re.M))

def expected_deck(nb)->tuple:
    "The sections (a title slide, then one per `##` heading) and the figures a deck of the executed lecture `nb` should show"
    shown, heads = [c for c in nb.cells if not hidden(c) and not solution(c)], []
    for c in shown:
        if c.cell_type != 'markdown': continue
        prose = re.sub(r'(?ms)^\s*(```|~~~).*?^\s*\1', '', c.source)  # headings in code fences are code
        heads += [h.strip() for h in re.findall(r'(?m)^##?\s+(.*)$', prose)]
    if not (shown and shown[0].cell_type == 'markdown' and re.match(r'##?\s', shown[0].source.lstrip())): heads = ['', *heads]
    figures = sum(any(k.startswith('image/') for k in o.get('data', {})) for c in shown if c.cell_type == 'code'
                  and not re.search(r'^\s*#\|\s*output:\s*false', c.source, re.M) for o in c.outputs)
    return heads, figures

def test_slides_in_chromium(browser, courses):
    """Every deck loads reveal.js from its own folder, has a slide per section, shows every figure and all its maths as MathML on
    its slide, moves to the next section with the right arrow key, loads nothing from the network and links nothing broken"""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    bad, decks = [], 0
    for course, m in courses:
        r, b = check_page(browser, course/'index.html')
        linked = {unquote(urlparse(u).path) for u in r['links']}
        assert {str(course/l[k]) for l in m['lectures'] for k in ('slides', 'student')} <= linked, 'the index must link every deck and student notebook'
        for l in m['lectures']:
            deck = course/l['slides']
            open_page(browser, deck)
            WebDriverWait(browser, 60).until(lambda d: d.execute_script("return typeof Reveal !== 'undefined' && Reveal.isReady()"))
            r = browser.execute_script(_page_js)
            bad += page_problems(browser, deck, r)
            assert r['title'] == f"{l['title']} slides", r['title']
            d = browser.execute_script(_deck_js)
            heads, figures = expected_deck(nbformat.read(course/l['notebook'], as_version=4))
            assert d['horizontal'] == len(heads) and d['total'] >= len(heads), (deck.name, d['horizontal'], heads)
            assert [h.lower() for h in d['headings'][1:]] == [h.lower() for h in heads[1:]], (deck.name, d['headings'], heads)
            assert d['visited'] == d['total'] and not d['wrong'], (deck.name, d['wrong'])
            assert d['images'] >= figures and not d['badImages'], (deck.name, d['images'], figures, d['badImages'][:5])
            assert not d['badMaths'], (deck.name, d['badMaths'][:5])
            assert browser.execute_script("return Reveal.getIndices().h") == 0
            ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
            WebDriverWait(browser, 10).until(lambda b: b.execute_script("return Reveal.getIndices().h") == 1)
            decks += 1
            if l is m['lectures'][0] and course == courses[0][0] and d['figureAt']:
                browser.execute_script(f"Reveal.configure({{transition: 'none'}}); Reveal.slide({d['figureAt'][0]}, {d['figureAt'][1]})")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(ARTIFACTS/'slides1.png'))  # CI uploads it
    assert not bad, '\n'.join(bad)
    assert decks >= 1 and courses[-1][1]['lectures'][0]['name'] == '01_tiny'

def test_tiny_deck(tiny_course):
    "The tiny lecture's deck: its sections, its maths, its figure, and neither solution"
    html = (tiny_course/'slides'/'01_tiny.slides.html').read_text()
    assert html.count('<math') == 2 and 'Why does question 8 end' in html and 'Exercise 3: The seed' in html
    assert 'rand(10)' not in html and 'The answer of exercise 2' not in html and 'the printed numbers and the figure' not in html
    assert re.findall(r'<script[^>]*src="([^"]+)"', html) == ['reveal.js/dist/reveal.js', 'reveal.js/plugin/notes/notes.js']
    assert (tiny_course/'slides'/'reveal.js'/'dist'/'reveal.js').stat().st_size > 50_000 and (tiny_course/'slides'/'reveal.js'/'LICENSE').exists()

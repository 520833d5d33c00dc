"""`fastcam-course`: the course it builds opened in a real browser (headless Debian Chromium, skipped where it is missing),
and its promises: same seed, same numbers and figures; a failing lecture stops it with a message naming the lecture and cell.

`tools/test` builds the whole course once and passes its folder in FASTCAM_COURSE, so the browser checks every real handout
without running the lectures again; without FASTCAM_COURSE this file builds a tiny course of its own."""
import base64, json, os, re, subprocess
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
    "Small lecture notebooks in folder `d`: 01 has maths, a figure, a hidden cell and a seeded number; 02 fails at its third cell"
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# A tiny lecture\n\n> Maths, a figure and a seeded number"),
        new_markdown_cell(r"The score is $y_c = \sum_k w_{ck} F_k$, and $$\alpha^c_k = \frac{1}{Z}\sum_{i,j} A^k_{ij}$$ while `$HOME` is code."),
        new_code_cell("#| hide\nfrom fastcam.course import lecture_settings\nimport random, numpy as np, matplotlib.pyplot as plt"),
        new_code_cell("s = lecture_settings()\nprint(s.offline, s.full, s.seed, random.random(), np.random.rand())"),
        new_code_cell("plt.plot(np.random.rand(5));"),
        new_markdown_cell("## Next\n\nSee [this lecture](01_tiny.ipynb), [this section](#Next) and [the web](https://docs.fast.ai).")]), d/'01_tiny.ipynb')
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
    assert a[0].split()[:3] == ['True', 'False', '7'] and len(a[1]) == 1  # the settings reach the kernel: offline, CPU-sized, the seed
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]  # the seed reaches the kernel: Python's and numpy's generators, the figure

def test_a_failing_lecture_is_named_with_its_cell(lectures, tmp_path):
    r = course_cmd('--path', lectures, '--out', tmp_path)
    assert r.returncode != 0
    assert ("fastcam-course: lecture 02_broken failed at cell 3 of 3 (`y = x/0`): ZeroDivisionError: division by zero." in r.stderr
            and str(tmp_path/'failed'/'02_broken.ipynb') in r.stderr), r.stderr[-3000:]
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tmp_path/'01_tiny.html').exists() and not (tmp_path/'02_broken.html').exists()  # lectures run in order, it stops at the first failure
    assert 'ZeroDivisionError' in (tmp_path/'failed'/'02_broken.ipynb').read_text()

def test_unknown_lecture_and_missing_folder(lectures, tmp_path):
    r = course_cmd('--path', lectures, '--lectures', '09', '--out', tmp_path)
    assert r.returncode != 0 and "No lecture '09'; choose among 01_tiny, 02_broken" in r.stderr and 'Traceback' not in r.stderr
    r = course_cmd('--path', tmp_path/'nowhere', '--out', tmp_path)
    assert r.returncode != 0 and 'No lectures folder' in r.stderr and 'Traceback' not in r.stderr
    r = course_cmd('--path', lectures, '--data', tmp_path/'nowhere', '--out', tmp_path)
    assert r.returncode != 0 and '--data must be a Pets folder named oxford-iiit-pet' in r.stderr and 'Traceback' not in r.stderr

# ---- in the browser

@pytest.fixture(scope='module')
def course(lectures, tmp_path_factory):
    "The course folder tools/test built (FASTCAM_COURSE), or the tiny lecture built here"
    if os.environ.get('FASTCAM_COURSE'):
        p = Path(os.environ['FASTCAM_COURSE'])
        assert (p/'index.html').exists() and (p/'course.json').exists(), f"FASTCAM_COURSE={p} holds no course"
        return p
    out = tmp_path_factory.mktemp('course')
    r = course_cmd('--path', lectures, '--lectures', '01', '--out', out, '--offline')
    assert r.returncode == 0, r.stderr[-3000:]
    return out

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

def check_page(driver, page:Path)->tuple:
    "Open `page` and return (what the page reports, the problems found)"
    driver.get(page.as_uri())
    r = driver.execute_script(_page_js)
    name, bad = page.name, []
    if r['ready'] != 'complete' or not r['title'] or r['text'] < 100: bad.append(f"{name}: did not load ({r['ready']}, title {r['title']!r}, {r['text']} characters)")
    bad += [f"{name}: image {i['src']}... has no natural size" for i in r['images'] if not i['ok']]
    for url in r['links']:
        u = urlparse(url)
        if u.scheme in ('http', 'https', 'mailto'): continue  # the web: not reachable here
        if u.scheme != 'file': bad.append(f"{name}: link {url}"); continue
        p = Path(unquote(u.path))
        if not p.exists(): bad.append(f"{name}: broken link {url}")
        elif p == page and u.fragment and unquote(u.fragment) not in r['ids']: bad.append(f"{name}: link to a missing anchor {url}")
    bad += [f"{name}: loads {u} from the network" for u in r['external']]
    bad += [f"{name}: requested {u}" for u in r['resources'] if not u.startswith(('file:', 'data:'))]
    bad += [f"{name}: maths not rendered as MathML ({m})" for m in r['maths'] if m['w'] <= 0 or m['h'] <= 0 or 'math' not in m['display']]
    raw = re.findall(r'\$\$.+?\$\$|\$[^$\s][^$\n]*?\$|\\(?:frac|sum|alpha|partial|mathrm|text|lVert)\b', r['prose'])
    bad += [f"{name}: maths left as raw text: {m[:60]}" for m in raw]
    bad += [f"{name}: console {e['level']}: {e['message'][:200]}" for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    return r, bad

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
    browser.get((course/first['html']).as_uri())
    size = browser.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
    clip = dict(x=0, y=0, width=size['width'], height=min(size['height'], 15000), scale=1)
    shot = browser.execute_cdp_cmd('Page.captureScreenshot', {'format': 'png', 'captureBeyondViewport': True, 'clip': clip})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    f = ARTIFACTS/'lecture1.png'
    f.write_bytes(base64.b64decode(shot['data']))
    im = Image.open(f)
    assert im.width >= 800 and im.height >= min(size["height"], 15000) - 2 > 400  # the whole page (up to 15000 px)
    assert len(set(im.convert('L').resize((64, 256)).getdata())) > 20  # not a blank page

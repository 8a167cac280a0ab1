//! The report in a real browser: headless Chromium loads `report.html` from disk with no console
//! errors, every chart has a size, a phone-width page does not scroll sideways, and a screenshot
//! is kept for the test log. `.ci/run` installs Chromium (Debian's `chromium`); where none can
//! be installed the test says so and skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Runs Chromium headless on `page` with `extra` arguments; returns (stdout, stderr).
fn run(bin: &Path, page: &Path, profile: &Path, width: u32, extra: &[&str]) -> (String, String) {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--window-size={width},900"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("file://{}", page.display()));
    std::fs::create_dir_all(profile).unwrap();
    let out_path = profile.join(format!("out-{width}-{}.txt", extra.len()));
    let err_path = profile.join(format!("err-{width}-{}.txt", extra.len()));
    let mut child = Command::new(bin)
        .args(&args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        std::fs::read_to_string(out_path).unwrap_or_default(),
        std::fs::read_to_string(err_path).unwrap_or_default(),
    )
}

/// Measures what the browser laid out: each chart's size, whether the page scrolls sideways;
/// for every text of every chart, the size it is drawn at (its font size times the chart's
/// scale) and whether it spills out of its chart; for every legend text (`text.key`), whether
/// any plotted line or point crosses it, and whether its series has a tooltip (`<title>`).
const PROBE: &str = r#"<script>(function(){
var r=[],small=[],outside=[],overlap=[],notip=[];
function inside(b,x,y){return x>b.left+1&&x<b.right-1&&y>b.top+1&&y<b.bottom-1;}
document.querySelectorAll('svg').forEach(function(s,i){
 var b=s.getBoundingClientRect();r.push([b.width,b.height]);var k=b.width/s.viewBox.baseVal.width;
 s.querySelectorAll('text').forEach(function(t){var px=parseFloat(getComputedStyle(t).fontSize)*k;var tb=t.getBoundingClientRect();var w=t.textContent.trim();if(!w){return;}if(px<12){small.push([i,w,px]);}if(tb.left<b.left-1||tb.right>b.right+1||tb.top<b.top-1||tb.bottom>b.bottom+1){outside.push([i,w]);}});
 var tips=[];s.querySelectorAll('title').forEach(function(t){t.textContent.split('; ').forEach(function(x){tips.push(x);});});
 s.querySelectorAll('text.key').forEach(function(t){
  var w=t.textContent.trim(),kb=t.getBoundingClientRect(),hit=false;
  if(tips.indexOf(w)<0){notip.push([i,w]);}
  s.querySelectorAll('polyline').forEach(function(p){
   if(hit){return;}var m=p.getScreenCTM(),n=p.points.numberOfItems,prev=null;
   for(var j=0;j<n&&!hit;j++){var q=p.points.getItem(j).matrixTransform(m);
    if(prev){var d=Math.max(Math.abs(q.x-prev.x),Math.abs(q.y-prev.y)),steps=Math.ceil(d)+1;
     for(var u=0;u<=steps;u++){var f=u/steps;if(inside(kb,prev.x+(q.x-prev.x)*f,prev.y+(q.y-prev.y)*f)){hit=true;break;}}}
    else if(inside(kb,q.x,q.y)){hit=true;}
    prev=q;}});
  s.querySelectorAll('circle').forEach(function(c){var cb=c.getBoundingClientRect();if(inside(kb,cb.left+cb.width/2,cb.top+cb.height/2)){hit=true;}});
  if(hit){overlap.push([i,w]);}
 });
});
var o=document.createElement('pre');o.id='probe';o.textContent=JSON.stringify({svgs:r,small:small,outside:outside,overlap:overlap,notip:notip,overflow:document.documentElement.scrollWidth-window.innerWidth});document.body.appendChild(o);})();</script>"#;

#[test]
fn the_report_loads_in_headless_chromium_without_errors() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: no Chromium found (apt-get install chromium, or set CHROMIUM=/path); .ci/run installs it");
        return;
    };
    let work = std::env::temp_dir().join(format!("reports-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smoke");
    for e in std::fs::read_dir(&fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), work.join(e.file_name())).unwrap();
    }
    let report = reports::render(&work).unwrap();
    // The report itself has no script; a copy gets a probe that measures what the browser laid out.
    let html = std::fs::read_to_string(&report).unwrap();
    let probed = work.join("probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let charts = html.matches("<svg").count();
    assert!(charts >= 8);
    for width in [1400, 390] {
        let (dom, log) = run(
            &bin,
            &probed,
            &work.join(format!("profile-{width}")),
            width,
            &["--dump-dom"],
        );
        let probe = dom
            .split("<pre id=\"probe\">")
            .nth(1)
            .and_then(|s| s.split("</pre>").next())
            .unwrap_or_else(|| panic!("no probe output at width {width}; stderr:\n{log}"));
        let v: serde_json::Value = serde_json::from_str(probe).unwrap();
        let svgs = v["svgs"].as_array().unwrap();
        assert_eq!(svgs.len(), charts, "every chart is in the DOM");
        for (i, s) in svgs.iter().enumerate() {
            let (w, h) = (s[0].as_f64().unwrap(), s[1].as_f64().unwrap());
            assert!(w > 50.0 && h > 20.0, "chart {i} is {w}x{h} at width {width}");
        }
        if width == 1400 {
            // At a desktop width as a reader sees it: nothing under 12 px, nothing cut off.
            assert_eq!(v["small"], serde_json::json!([]), "text under 12 px at width {width}");
            assert_eq!(
                v["outside"],
                serde_json::json!([]),
                "text outside its chart at width {width}"
            );
            assert_eq!(v["overlap"], serde_json::json!([]), "a legend over a line or point");
            assert_eq!(
                v["notip"],
                serde_json::json!([]),
                "a legend entry whose series has no tooltip"
            );
        }
        assert!(
            v["overflow"].as_f64().unwrap() <= 0.0,
            "the page scrolls sideways at width {width}: {v}"
        );
        let console: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("net::ERR"))
            .collect();
        assert!(console.is_empty(), "console errors at width {width}: {console:#?}");
    }
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let _ = run(
        &bin,
        &report,
        &work.join("profile-shot"),
        1000,
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(
        std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false),
        "no screenshot"
    );
    eprintln!("screenshot of the report: {}", shot.display());
    std::fs::remove_dir_all(&work).unwrap();
}

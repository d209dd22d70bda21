//! The landing page at `/`: how to pull, and recent build errors.

use super::Registry;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Html;
use std::sync::Arc;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) async fn page(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> Html<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("REGISTRY");
    let host = escape(host);
    let errors: String = reg
        .recent_errors()
        .iter()
        .map(|(image, err)| format!("<li><code>{}</code>: {}</li>\n", escape(image), escape(err)))
        .collect();
    let errors = if errors.is_empty() {
        "<p>None.</p>".to_string()
    } else {
        format!("<ul>\n{errors}</ul>")
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nixery</title></head>
<body>
<h1>nixery: container images built on demand with Nix</h1>
<p>The image name lists the packages. Pull one:</p>
<pre>docker pull {host}/shell/git/htop
ctr image pull --plain-http {host}/shell/git/htop:latest</pre>
<ul>
<li><code>shell</code> adds bashInteractive, coreutils, moreutils and nano; <code>arm64</code> builds for aarch64-linux.</li>
<li>Packages are sorted: <code>git/htop</code> and <code>htop/git</code> are the same image. <code>cacert</code> and <code>iana-etc</code> are always included.</li>
<li>Nested attributes use dots (<code>xorg.xev</code>); names are matched case-insensitively; a leading digit also matches <code>_</code>-prefixed attributes.</li>
<li>The first pull builds the image; later pulls, and images sharing store paths, reuse cached layers.</li>
</ul>
<p>Packages come from: {source}.</p>
<h2>Recent build errors</h2>
{errors}
</body></html>
"#,
        source = escape(&reg.settings.source_description),
    ))
}

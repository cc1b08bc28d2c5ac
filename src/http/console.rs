//! The web console: a page and its script and stylesheet, built into the
//! binary, served open (the page asks for a token; the API checks it).

use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page's policy: only this origin's script, style and API; nothing
/// inline, nothing framed, no forms posted anywhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The console's files: route, content type, body.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../console/index.html"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/app.js"),
    ),
    (
        "/console/app.css",
        "text/css; charset=utf-8",
        include_str!("../../console/app.css"),
    ),
];

/// True for the console's own routes, which need no token.
pub fn is_console_route(route: &str) -> bool {
    ASSETS.iter().any(|(path, _, _)| *path == route)
}

/// The total bytes of the console's files.
pub fn asset_bytes() -> usize {
    ASSETS.iter().map(|(_, _, body)| body.len()).sum()
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
            // Built into the binary: a new node may bring new files.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The console's routes, to merge into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { serve(content_type, body) }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_small_and_loads_nothing_from_elsewhere() {
        assert!(asset_bytes() < 64 * 1024, "{} bytes", asset_bytes());
        for (path, _, body) in ASSETS {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{path} names another origin"
            );
        }
        let page = ASSETS[0].2;
        assert!(
            !page.contains("<style") && !page.contains(" style="),
            "inline style in the page"
        );
        assert!(!page.contains("<script>"), "inline script in the page");
    }
}

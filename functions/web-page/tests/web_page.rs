use lambda_http::http::HeaderMap;
use testkit::{read_raw, request};
use web_page::{handler, Page};

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types_and_no_outside_resources() {
    for (path, content_type) in [
        ("/viral-clip", "text/html; charset=utf-8"),
        ("/viral-clip/", "text/html; charset=utf-8"),
        (
            "/viral-clip/assets/app.js",
            "text/javascript; charset=utf-8",
        ),
        ("/viral-clip/assets/app.css", "text/css; charset=utf-8"),
        ("/viral-clip/assets/placeholder.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&Page::default(), "GET", path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        let text = String::from_utf8(body).unwrap();
        for outside in ["http://", "//cdn", "fonts.googleapis", "unpkg", "jsdelivr"] {
            let hits: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(outside) && !l.contains("www.w3.org"))
                .collect();
            assert!(hits.is_empty(), "{path} loads {outside}: {hits:?}");
        }
    }
    let (_, _, html) = get(&Page::default(), "GET", "/viral-clip").await;
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("/viral-clip/assets/app.js") && html.contains("<label"));
}

#[tokio::test]
async fn unknown_assets_are_404_and_other_methods_405() {
    for (method, path, status) in [
        ("GET", "/viral-clip/assets/nope.js", 404),
        ("GET", "/viral-clip/assets/../../etc/passwd", 404),
        ("POST", "/viral-clip", 405),
    ] {
        let (got, _, _) = get(&Page::default(), method, path).await;
        assert_eq!(got, status, "{method} {path}");
    }
}

#[tokio::test]
async fn the_page_knows_the_direct_upload_limit_and_may_put_to_the_object_store() {
    let env = shared::config::Env::from_pairs([
        ("MAX_UPLOAD_BYTES", "1048576"),
        ("S3_ENDPOINT", "http://127.0.0.1:9100/"),
    ]);
    let page = Page::from_env(&env).unwrap();

    let (status, headers, body) = get(&page, "GET", "/viral-clip").await;

    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(r#"name="viralclip-max-upload-bytes" content="1048576""#));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:9100;"),
        "{csp}"
    );
    assert!(Page::from_env(&shared::config::Env::from_pairs([("S3_ENDPOINT", "nope")])).is_err());
}

/// The page's answer to `method path` without a body: status, headers, raw body.
async fn get(page: &Page, method: &str, path: &str) -> (u16, HeaderMap, Vec<u8>) {
    read_raw(
        handler(page, request(method, path, None, None, "".into()))
            .await
            .unwrap(),
    )
}

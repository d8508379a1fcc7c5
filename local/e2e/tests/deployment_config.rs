//! Every function crate and every route appears in both `template.yaml` (the cloud) and the
//! `cargo lambda watch` router of `Cargo.toml` (the local stack), with the same path and method.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The API's routes (`../shared/spec/api.md`) and the function serving each.
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/auth/register", "auth-register"),
    ("POST", "/auth/login", "auth-login"),
    ("POST", "/viral-clip/video/youtube", "submit-youtube"),
    ("POST", "/viral-clip/video/upload", "upload-video"),
    ("POST", "/viral-clip/video/uploads", "create-upload"),
    (
        "POST",
        "/viral-clip/video/uploads/{upload_id}/complete",
        "complete-upload",
    ),
    (
        "DELETE",
        "/viral-clip/video/uploads/{upload_id}",
        "abort-upload",
    ),
    ("GET", "/viral-clip/videos", "list-videos"),
    ("GET", "/viral-clip/videos/{video_id}", "get-video"),
    ("DELETE", "/viral-clip/videos/{video_id}", "delete-video"),
    ("POST", "/viral-clip/videos/{video_id}/retry", "retry-video"),
    ("GET", "/viral-clip/jobs/{job_id}", "get-job"),
    ("GET", "/viral-clip", "web-page"),
    ("GET", "/viral-clip/assets/{asset}", "web-page"),
];

/// Function crates that are not behind an HTTP route.
const SCHEDULED: &[&str] = &["worker"];

/// The crates under `functions/` that build a function (a binary; `http-function` is their library).
fn function_crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/main.rs").exists())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The template's resource block (from its `  Name:` line to the next) that builds `binary`.
fn template_block(template: &str, binary: &str) -> String {
    let resources = template
        .split("\nResources:\n")
        .nth(1)
        .expect("a Resources section");
    let resources = resources.split("\nOutputs:").next().unwrap();
    let mut blocks: Vec<String> = Vec::new();
    for line in resources.lines() {
        let is_header =
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if is_header || blocks.is_empty() {
            blocks.push(String::new());
        }
        let block = blocks.last_mut().unwrap();
        block.push_str(line);
        block.push('\n');
    }
    let needle = format!("Binary: {binary}\n");
    blocks
        .into_iter()
        .find(|b| b.contains(&needle))
        .unwrap_or_else(|| panic!("template.yaml builds no function {binary}"))
}

#[test]
fn every_function_crate_is_in_the_template_and_every_route_in_both_template_and_router() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let cargo: toml::Value = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let router = cargo["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("a watch router");

    let crates = function_crates();
    let mut expected: Vec<String> = ROUTES
        .iter()
        .map(|r| r.2.to_owned())
        .chain(SCHEDULED.iter().map(|s| s.to_string()))
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(crates, expected, "functions/ and the route list agree");

    for (method, path, function) in ROUTES {
        let block = template_block(&template, function);
        assert!(
            block.contains(&format!("Method: {method}\n")),
            "template: {function} has no Method: {method}\n{block}"
        );
        assert!(
            block.contains(&format!("Path: {path}\n")),
            "template: {function} has no Path: {path}\n{block}"
        );
        let entries = router
            .get(*path)
            .unwrap_or_else(|| panic!("router has no {path}"))
            .as_array()
            .unwrap();
        assert!(
            entries.iter().any(|e| e["method"].as_str() == Some(method)
                && e["function"].as_str() == Some(function)),
            "router: {path} does not send {method} to {function}"
        );
    }
    assert_eq!(
        router.len(),
        ROUTES
            .iter()
            .map(|r| r.1)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        "no extra router paths"
    );
    for function in SCHEDULED {
        let block = template_block(&template, function);
        assert!(
            block.contains("ScheduleExpression: rate(1 minute)"),
            "{function} runs every minute\n{block}"
        );
    }
}

#[test]
fn the_http_api_throttles_every_route_by_default_with_settings_of_the_template() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let api = template_resource(&template, "HttpApi");
    for (setting, parameter) in [
        ("ThrottlingRateLimit", "ApiThrottleRateLimit"),
        ("ThrottlingBurstLimit", "ApiThrottleBurstLimit"),
    ] {
        assert!(
            api.contains(&format!("{setting}: !Ref {parameter}")),
            "HttpApi sets no {setting} from {parameter}:\n{api}"
        );
        assert!(
            template.contains(&format!("\n  {parameter}:\n    Type: Number\n")),
            "no parameter {parameter}"
        );
    }
    assert!(api.contains("DefaultRouteSettings:"), "{api}");
}

/// The template's resource `name`: from its `  name:` line to the next resource's.
fn template_resource(template: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let is_header = |l: &str| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':');
    let mut lines = template.lines().skip_while(|l| *l != header);
    let first = lines.next().unwrap_or_else(|| panic!("no resource {name}"));
    let mut block = vec![first];
    block.extend(lines.take_while(|l| !is_header(l)));
    block.join("\n")
}

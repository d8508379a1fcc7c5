//! Property tests of the parsers that take untrusted input: the YouTube link parser, the MP4
//! sniffer and duration reader (whole-file and ranged), the multipart upload form. Bounded:
//! a fixed number of generated cases each (`PROPTEST_CASES` overrides).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use shared::error::ApiError;
use shared::ingest::direct_upload::UploadForm;
use shared::media::{self, MediaError};
use shared::youtube::YoutubeLink;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../local/testkit/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ID: &str = "[A-Za-z0-9_-]{11}";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(raw in "\\PC{0,300}") {
        let _ = YoutubeLink::parse(&raw);
    }

    #[test]
    fn url_like_text_parses_or_is_refused_without_panicking(
        raw in "(https?://)?([a-z.-]{0,20}\\.)?(youtube\\.com|youtu\\.be|evil\\.example)[/?=&#:@%a-zA-Z0-9_.-]{0,60}"
    ) {
        if let Ok(link) = YoutubeLink::parse(&raw) {
            // whatever is accepted has a valid id and a canonical form that parses back to it
            let again = YoutubeLink::parse(&link.canonical_url()).unwrap();
            prop_assert_eq!(again, link);
        }
    }

    #[test]
    fn every_accepted_form_gives_the_id_and_the_canonical_url(
        id in ID,
        scheme in prop::sample::select(vec!["", "http://", "https://"]),
        form in 0usize..8,
        extra in "(&[a-z]{1,5}=[a-z0-9]{0,5}){0,3}",
    ) {
        let link = match form {
            0 => format!("{scheme}www.youtube.com/watch?v={id}{extra}"),
            1 => format!("{scheme}youtube.com/watch?feature=share&v={id}"),
            2 => format!("{scheme}m.youtube.com/shorts/{id}"),
            3 => format!("{scheme}music.youtube.com/watch?v={id}{extra}"),
            4 => format!("{scheme}youtu.be/{id}"),
            5 => format!("{scheme}www.youtube.com/live/{id}"),
            6 => format!("{scheme}www.youtube-nocookie.com/embed/{id}"),
            _ => format!("{scheme}youtube.com/v/{id}"),
        };
        let parsed = YoutubeLink::parse(&link).map_err(|e| TestCaseError::fail(format!("{link}: {e}")))?;
        prop_assert_eq!(parsed.id().as_str(), id.as_str());
        prop_assert_eq!(parsed.canonical_url(), format!("https://www.youtube.com/watch?v={id}"));
    }

    #[test]
    fn look_alike_hosts_are_refused(id in ID, host in "(youtube\\.com\\.[a-z]{2,8}|[a-z]{1,8}youtube\\.com|youtu\\.be\\.[a-z]{2,5})") {
        let link = format!("https://{host}/watch?v={id}");
        prop_assert!(YoutubeLink::parse(&link).is_err(), "{}", link);
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_read_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..2_048)) {
        let whole = media::inspect(&bytes);
        let ranged = ranged(&bytes);
        // a file that is not a video is never taken for one by either reader
        if whole.is_err() {
            prop_assert!(ranged.is_err(), "ranged accepted what inspect refused");
        }
    }

    #[test]
    fn damaged_videos_are_refused_or_read_without_panicking(
        name in prop::sample::select(vec!["sample-3s.mp4", "moov-at-end-2s.mp4", "sample-4s.mov"]),
        cut in 0.0f64..1.0,
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
    ) {
        let mut bytes = fixture(name);
        let len = ((bytes.len() as f64) * cut) as usize;
        bytes.truncate(len.max(1));
        for (at, value) in flips {
            let i = ((bytes.len() as f64) * at) as usize;
            if i < bytes.len() { bytes[i] = value; }
        }
        let _ = media::inspect(&bytes);
        let _ = ranged(&bytes);
    }

    #[test]
    fn a_cut_off_video_is_never_accepted(
        name in prop::sample::select(vec!["sample-3s.mp4", "moov-at-end-2s.mp4", "sample-4s.mov"]),
        keep in 0.0f64..1.0,
    ) {
        let full = fixture(name);
        let cut = &full[..((full.len() as f64 * keep) as usize).min(full.len() - 1)];
        prop_assert!(media::inspect(cut).is_err());
        prop_assert!(ranged(cut).is_err());
    }

    #[test]
    fn any_multipart_body_is_a_4xx_or_a_form_never_a_panic_or_5xx(
        boundary in "[a-zA-Z0-9]{1,30}",
        parts in prop::collection::vec(
            (prop::sample::select(vec!["file", "title", "config", "aspect_ratio", "subtitle", "x", ""]),
             prop::option::of("[a-z.]{0,12}"),
             prop::collection::vec(any::<u8>(), 0..200)),
            0..5),
        tail in prop::sample::select(vec!["--\r\n", "", "\r\n", "--"]),
        junk in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut body = junk;
        for (name, filename, data) in &parts {
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
            if let Some(f) = filename { body.extend(format!("; filename=\"{f}\"").as_bytes()); }
            body.extend(b"\r\n\r\n");
            body.extend(data);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}{tail}").as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")).unwrap(),
        );
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let result = rt.block_on(UploadForm::parse(&headers, Bytes::from(body), 64 * 1024));
        if let Err(e) = result {
            prop_assert!(e.status().is_client_error(), "{:?}", e);
            prop_assert!(!matches!(e, ApiError::Internal(_)));
        }
    }
}

/// [`media::inspect_ranged`] over bytes in memory.
fn ranged(bytes: &[u8]) -> Result<media::VideoInfo, String> {
    let data = Bytes::copy_from_slice(bytes);
    let run = media::inspect_ranged(data.len() as u64, |start, len| {
        let data = data.clone();
        async move {
            let (s, e) = (start as usize, (start + len) as usize);
            if e > data.len() {
                return Err(format!("range {s}..{e} past the end"));
            }
            Ok(data.slice(s..e))
        }
    });
    match futures_util::FutureExt::now_or_never(run).expect("no real I/O") {
        Ok((info, _)) => Ok(info),
        Err(media::RangedError::Media(MediaError::NotAVideo(m) | MediaError::Damaged(m))) => Err(m),
        Err(media::RangedError::Read(e)) => Err(e),
    }
}

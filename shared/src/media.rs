//! What an uploaded file is, from its bytes: an ISO BMFF (MP4/MOV/M4V) video or not, and its
//! duration from the `mvhd` box. Box headers, `mvhd` and `hdlr` are decoded with `mp4-atom`;
//! only the boxes on the way to them are walked, so sample tables and media data are never
//! parsed (or, for ranged reads, never fetched).

use mp4_atom::{Atom, Co64, Decode, FourCC, Hdlr, Header, Mvhd, Stco};

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Not an ISO BMFF video at all (a 415 for the caller).
    #[error("{0}")]
    NotAVideo(String),
    /// Looks like one, but its boxes cannot be read (a 422 for the caller).
    #[error("{0}")]
    Damaged(String),
}

/// What was learnt about a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    /// From `mvhd` (`duration / timescale`, rounded); `None` when the file does not say.
    pub duration_seconds: Option<i64>,
    /// `ftyp`'s major brand, when there is one (e.g. `isom`, `qt  `).
    pub major_brand: Option<String>,
}

/// Boxes that may open an ISO BMFF / QuickTime file.
const FIRST_BOXES: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid",
];

/// Brands of ISO BMFF files that are not videos (still images, audio-only containers).
const NOT_VIDEO_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ",
    b"M4P ", b"crx ",
];

const NOT_A_VIDEO: &str = "the file is not an MP4 or MOV video";

/// A box found while walking: its type, where its body starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct BoxInfo {
    pub kind: FourCC,
    pub offset: u64,
    pub header_len: u64,
    pub body_len: u64,
}

/// Reads the header of the box at the start of `bytes` (which extend to `remaining` bytes
/// in the file). `None` when `bytes` is too short to hold the header.
pub fn box_at(bytes: &[u8], offset: u64, remaining: u64) -> Result<Option<BoxInfo>, MediaError> {
    if bytes.len() < 8 || (bytes[..4] == [0, 0, 0, 1] && bytes.len() < 16) {
        return Ok(None);
    }
    let mut buf = bytes;
    let header = Header::decode(&mut buf)
        .map_err(|e| MediaError::Damaged(format!("a box header is invalid ({e})")))?;
    let header_len = (bytes.len() - buf.len()) as u64;
    let body_len = match header.size {
        Some(size) => size as u64,
        None => remaining.saturating_sub(header_len), // extends to the end of the file
    };
    if header_len + body_len > remaining {
        return Err(MediaError::Damaged(format!(
            "the file is truncated: its '{}' box needs {} bytes but only {} remain",
            header.kind,
            header_len + body_len,
            remaining
        )));
    }
    Ok(Some(BoxInfo {
        kind: header.kind,
        offset,
        header_len,
        body_len,
    }))
}

/// Checks the first bytes of a file (at least 16 of them when the file is that long): is it
/// an ISO BMFF file at all? Cheap; for refusing a text file named `.mp4` early.
pub fn sniff(prefix: &[u8], file_len: u64) -> Result<(), MediaError> {
    if file_len == 0 {
        return Err(MediaError::NotAVideo("the file is empty".into()));
    }
    let first = match prefix.get(4..8) {
        Some(kind) => kind,
        None => return Err(MediaError::NotAVideo(NOT_A_VIDEO.into())),
    };
    if !FIRST_BOXES.iter().any(|k| k.as_slice() == first) {
        return Err(MediaError::NotAVideo(NOT_A_VIDEO.into()));
    }
    match box_at(prefix, 0, file_len) {
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    if first == b"ftyp" && prefix.len() >= 12 {
        let brand: [u8; 4] = prefix[8..12].try_into().unwrap_or_default();
        if NOT_VIDEO_BRANDS.iter().any(|b| **b == brand) {
            return Err(MediaError::NotAVideo(format!(
                "the file is an ISO BMFF '{}' file, not a video",
                String::from_utf8_lossy(&brand).trim()
            )));
        }
    }
    Ok(())
}

/// Inspects a whole file held in memory.
pub fn inspect(bytes: &[u8]) -> Result<VideoInfo, MediaError> {
    sniff(&bytes[..bytes.len().min(64)], bytes.len() as u64)?;
    let mut offset = 0u64;
    let mut major_brand = None;
    let mut moov = None;
    let len = bytes.len() as u64;
    while offset < len {
        let rest = &bytes[offset as usize..];
        let Some(b) = box_at(rest, offset, len - offset)? else {
            return Err(MediaError::Damaged(
                "the file is truncated inside a box header".into(),
            ));
        };
        let body = &rest[b.header_len as usize..(b.header_len + b.body_len) as usize];
        if b.kind == FourCC::new(b"ftyp") && body.len() >= 4 {
            major_brand = Some(String::from_utf8_lossy(&body[..4]).into_owned());
        }
        if b.kind == FourCC::new(b"moov") {
            moov = Some(body);
        }
        offset += b.header_len + b.body_len;
    }
    let moov = moov.ok_or_else(|| {
        MediaError::Damaged(
            "the video has no 'moov' box: it is truncated or not a complete recording".into(),
        )
    })?;
    Ok(VideoInfo {
        duration_seconds: inspect_moov(moov, len)?,
        major_brand,
    })
}

/// Why a stored file could not be inspected: its bytes, or the reading of them.
#[derive(Debug, thiserror::Error)]
pub enum RangedError<E> {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("reading the file failed: {0}")]
    Read(E),
}

/// What a ranged inspection cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub requests: u32,
    pub bytes: u64,
}

/// Bytes read at the start of the file and at each box header: enough for `ftyp` and a small
/// `moov` in one request.
const WINDOW: u64 = 64 * 1024;
/// Boxes walked before `moov` is found, and after it (checking the file's shape) at most.
const MAX_BOXES_BEFORE_MOOV: usize = 64;
const MAX_BOXES_AFTER_MOOV: usize = 16;
/// A `moov` larger than this is refused rather than read into memory.
pub const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;

/// Inspects a stored file of `file_len` bytes through `read(start, len)` (a ranged GET): walks
/// the top-level box headers (skipping `mdat` without reading it), reads `moov` wherever it
/// sits, and checks it as [`inspect`] does. Only the headers and `moov` are fetched, so memory
/// and transfer stay small however large the file is.
pub async fn inspect_ranged<E, F, Fut>(
    file_len: u64,
    mut read: F,
) -> Result<(VideoInfo, ReadStats), RangedError<E>>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes, E>>,
{
    let mut stats = ReadStats::default();
    let mut fetch = |start: u64, len: u64| {
        stats.requests += 1;
        stats.bytes += len;
        read(start, len)
    };
    if file_len == 0 {
        return Err(MediaError::NotAVideo("the file is empty".into()).into());
    }
    // The window: bytes of the file from `window_start`.
    let mut window_start = 0u64;
    let mut window = fetch(0, WINDOW.min(file_len))
        .await
        .map_err(RangedError::Read)?;
    sniff(&window[..window.len().min(64)], file_len)?;

    let mut offset = 0u64;
    let mut major_brand = None;
    let mut moov: Option<bytes::Bytes> = None;
    let mut after_moov = 0usize;
    let mut boxes = 0usize;
    while offset < file_len {
        boxes += 1;
        if moov.is_some() {
            after_moov += 1;
            if after_moov > MAX_BOXES_AFTER_MOOV {
                break; // enough of the file's shape checked
            }
        } else if boxes > MAX_BOXES_BEFORE_MOOV {
            return Err(MediaError::Damaged(format!(
                "no 'moov' box among the first {MAX_BOXES_BEFORE_MOOV} boxes"
            ))
            .into());
        }
        let remaining = file_len - offset;
        // A box header is at most 16 bytes: make sure the window holds them.
        let header_end = offset + remaining.min(16);
        if offset < window_start || header_end > window_start + window.len() as u64 {
            window_start = offset;
            window = fetch(offset, WINDOW.min(remaining))
                .await
                .map_err(RangedError::Read)?;
        }
        let at = (offset - window_start) as usize;
        let Some(b) = box_at(&window[at..], offset, remaining)? else {
            return Err(
                MediaError::Damaged("the file is truncated inside a box header".into()).into(),
            );
        };
        let body_start = offset + b.header_len;
        let in_window = |start: u64, len: u64| {
            start >= window_start && start + len <= window_start + window.len() as u64
        };
        if b.kind == FourCC::new(b"ftyp") && b.body_len >= 4 && in_window(body_start, 4) {
            let i = (body_start - window_start) as usize;
            major_brand = Some(String::from_utf8_lossy(&window[i..i + 4]).into_owned());
        }
        if b.kind == FourCC::new(b"moov") && moov.is_none() {
            if b.body_len > MAX_MOOV_BYTES {
                return Err(MediaError::Damaged(format!(
                    "its 'moov' box is {} bytes, more than the {} this service reads",
                    b.body_len, MAX_MOOV_BYTES
                ))
                .into());
            }
            let body = if in_window(body_start, b.body_len) {
                let i = (body_start - window_start) as usize;
                window.slice(i..i + b.body_len as usize)
            } else {
                fetch(body_start, b.body_len)
                    .await
                    .map_err(RangedError::Read)?
            };
            moov = Some(body);
        }
        offset = body_start + b.body_len;
    }
    let moov = moov.ok_or_else(|| {
        MediaError::Damaged(
            "the video has no 'moov' box: it is truncated or not a complete recording".into(),
        )
    })?;
    let duration_seconds = inspect_moov(&moov, file_len)?;
    Ok((
        VideoInfo {
            duration_seconds,
            major_brand,
        },
        stats,
    ))
}

/// Reads the body of a `moov` box of a file of `file_len` bytes: requires a video track whose
/// media lies inside the file (a cut-off file is damaged), returns the duration.
pub fn inspect_moov(moov: &[u8], file_len: u64) -> Result<Option<i64>, MediaError> {
    let mut duration = None;
    let mut has_video = false;
    let mut found_mvhd = false;
    for (kind, body) in children(moov)? {
        if kind == Mvhd::KIND {
            let mvhd = Mvhd::decode_body(&mut &body[..])
                .map_err(|e| MediaError::Damaged(format!("the 'mvhd' box cannot be read ({e})")))?;
            found_mvhd = true;
            duration = seconds(mvhd.duration, mvhd.timescale);
        } else if kind == FourCC::new(b"trak") {
            if let Some(end) = last_chunk_offset(body)? {
                if end >= file_len {
                    return Err(MediaError::Damaged(format!(
                        "the file is truncated: its media data reaches byte {end} but the file has {file_len} bytes"
                    )));
                }
            }
            has_video |= track_is_video(body)?;
        }
    }
    if !found_mvhd {
        return Err(MediaError::Damaged("the video has no 'mvhd' box".into()));
    }
    if !has_video {
        return Err(MediaError::NotAVideo(
            "the file has no video track (audio only?)".into(),
        ));
    }
    Ok(duration)
}

fn seconds(duration: u64, timescale: u32) -> Option<i64> {
    // All ones means "unknown" in both box versions.
    if timescale == 0 || duration == u64::MAX || duration == u64::from(u32::MAX) {
        return None;
    }
    i64::try_from((duration + u64::from(timescale) / 2) / u64::from(timescale)).ok()
}

fn track_is_video(trak: &[u8]) -> Result<bool, MediaError> {
    for (kind, mdia) in children(trak)? {
        if kind != FourCC::new(b"mdia") {
            continue;
        }
        for (kind, body) in children(mdia)? {
            if kind == Hdlr::KIND {
                let hdlr = Hdlr::decode_body(&mut &body[..]).map_err(|e| {
                    MediaError::Damaged(format!("an 'hdlr' box cannot be read ({e})"))
                })?;
                return Ok(hdlr.handler == FourCC::new(b"vide"));
            }
        }
    }
    Ok(false)
}

/// The largest chunk offset of a track (`stco`/`co64` in `mdia/minf/stbl`), if it has any.
fn last_chunk_offset(trak: &[u8]) -> Result<Option<u64>, MediaError> {
    let damaged =
        |e: mp4_atom::Error| MediaError::Damaged(format!("a chunk table cannot be read ({e})"));
    let mut last = None;
    for (kind, mdia) in children(trak)? {
        if kind != FourCC::new(b"mdia") {
            continue;
        }
        for (kind, minf) in children(mdia)? {
            if kind != FourCC::new(b"minf") {
                continue;
            }
            for (kind, stbl) in children(minf)? {
                if kind != FourCC::new(b"stbl") {
                    continue;
                }
                for (kind, body) in children(stbl)? {
                    let max = if kind == Stco::KIND {
                        Stco::decode_body(&mut &body[..])
                            .map_err(damaged)?
                            .entries
                            .into_iter()
                            .max()
                            .map(u64::from)
                    } else if kind == Co64::KIND {
                        Co64::decode_body(&mut &body[..])
                            .map_err(damaged)?
                            .entries
                            .into_iter()
                            .max()
                    } else {
                        None
                    };
                    last = last.max(max);
                }
            }
        }
    }
    Ok(last)
}

/// The child boxes of a container body, as (type, body).
fn children(body: &[u8]) -> Result<Vec<(FourCC, &[u8])>, MediaError> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset < body.len() {
        let rest = &body[offset..];
        let Some(b) = box_at(rest, offset as u64, rest.len() as u64)? else {
            return Err(MediaError::Damaged(
                "a box inside 'moov' is cut short".into(),
            ));
        };
        let (start, end) = (b.header_len as usize, (b.header_len + b.body_len) as usize);
        out.push((b.kind, &rest[start..end]));
        offset += end.max(1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../local/testkit/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_mp4_and_mov_files_give_their_duration() {
        let mp4 = inspect(&fixture("sample-3s.mp4")).unwrap();
        assert_eq!(mp4.duration_seconds, Some(3));
        assert_eq!(mp4.major_brand.as_deref(), Some("isom"));
        assert_eq!(
            inspect(&fixture("moov-at-end-2s.mp4"))
                .unwrap()
                .duration_seconds,
            Some(2)
        );
        let mov = inspect(&fixture("sample-4s.mov")).unwrap();
        assert_eq!(mov.duration_seconds, Some(4));
        assert_eq!(mov.major_brand.as_deref(), Some("qt  "));
    }

    #[test]
    fn text_empty_and_audio_only_files_are_not_videos() {
        for bytes in [
            b"hello, this is not a video at all".to_vec(),
            Vec::new(),
            b"\0\0\0".to_vec(),
            fixture("audio-only-2s.m4a"),
        ] {
            assert!(
                matches!(inspect(&bytes), Err(MediaError::NotAVideo(_))),
                "{:?}",
                inspect(&bytes)
            );
        }
    }

    #[test]
    fn a_truncated_video_is_damaged_not_a_crash() {
        let full = fixture("sample-3s.mp4");
        for cut in [9, 20, 40, 100, 500, 1_000, 1_958, 3_000, full.len() - 1] {
            let result = inspect(&full[..cut]);
            assert!(
                matches!(result, Err(MediaError::Damaged(_))),
                "cut at {cut}: {result:?}"
            );
        }
        let at_end = fixture("moov-at-end-2s.mp4");
        assert!(matches!(
            inspect(&at_end[..at_end.len() - 10]),
            Err(MediaError::Damaged(_))
        ));
    }

    /// [`inspect_ranged`] over bytes in memory.
    fn ranged(bytes: &[u8]) -> Result<(VideoInfo, ReadStats), RangedError<String>> {
        let data = bytes::Bytes::copy_from_slice(bytes);
        let run = inspect_ranged(data.len() as u64, |start, len| {
            let data = data.clone();
            async move {
                let (s, e) = (start as usize, (start + len) as usize);
                if e > data.len() {
                    return Err(format!("range {s}..{e} past the end"));
                }
                Ok(data.slice(s..e))
            }
        });
        futures_util::FutureExt::now_or_never(run).expect("no real I/O")
    }

    #[test]
    fn ranged_reads_agree_with_whole_file_inspection() {
        for name in ["sample-3s.mp4", "moov-at-end-2s.mp4", "sample-4s.mov"] {
            let bytes = fixture(name);
            let (info, stats) = ranged(&bytes).unwrap();
            assert_eq!(info, inspect(&bytes).unwrap(), "{name}");
            assert!(stats.requests >= 1, "{name}");
        }
        let audio = fixture("audio-only-2s.m4a");
        assert!(matches!(
            ranged(&audio),
            Err(RangedError::Media(MediaError::NotAVideo(_)))
        ));
        assert!(matches!(
            ranged(b"not a video, just some text"),
            Err(RangedError::Media(MediaError::NotAVideo(_)))
        ));
    }

    #[test]
    fn ranged_reads_refuse_truncated_files() {
        let full = fixture("sample-3s.mp4");
        for cut in [9, 20, 40, 100, 500, 1_000, 3_000, full.len() - 1] {
            let result = ranged(&full[..cut]);
            assert!(
                matches!(result, Err(RangedError::Media(MediaError::Damaged(_)))),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = fixture("sample-3s.mp4");
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let mut bytes = base[..rng.usize(0..base.len())].to_vec();
            for _ in 0..rng.usize(0..8) {
                if !bytes.is_empty() {
                    let i = rng.usize(0..bytes.len());
                    bytes[i] = rng.u8(..);
                }
            }
            let _ = inspect(&bytes);
        }
    }
}

//! YouTube links: accepted forms, the canonical URL, the video id and the thumbnail.

use std::fmt;

use url::{Host, Url};

/// Longest link accepted, in characters.
pub const MAX_LINK_CHARS: usize = 2_048;

const HOSTS: &[&str] = &[
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtu.be",
    "youtube-nocookie.com",
    "www.youtube-nocookie.com",
];

/// A YouTube video id: exactly 11 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VideoId(String);

impl VideoId {
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 11
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VideoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link to one YouTube video, parsed from any accepted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YoutubeLink {
    id: VideoId,
}

impl YoutubeLink {
    /// Parses a link a person pasted. The `Err` is a message for the `youtube_url` field.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is required");
        }
        if raw.chars().count() > MAX_LINK_CHARS {
            return Err("must be at most 2048 characters");
        }
        // The URL standard silently drops tabs and newlines inside a URL; a pasted link with
        // any whitespace or control character is refused instead.
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must be a single link without spaces");
        }
        let has_scheme = raw.find("://").is_some_and(|i| {
            raw[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        let url = if has_scheme {
            Url::parse(raw)
        } else {
            // "youtube.com/watch?v=…" (no scheme) means https.
            Url::parse(&format!("https://{raw}"))
        }
        .map_err(|_| NOT_A_VIDEO_LINK)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https link");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password");
        }
        if url.port().is_some() {
            return Err(NOT_A_VIDEO_LINK);
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            _ => return Err(NOT_A_VIDEO_LINK),
        };
        if !HOSTS.contains(&host.as_str()) {
            return Err("must be a youtube.com or youtu.be link");
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.collect::<Vec<_>>())
            .unwrap_or_default();
        // A trailing slash gives one empty last segment: ignore it.
        let segments: &[&str] = match segments.as_slice() {
            [rest @ .., ""] => rest,
            all => all,
        };
        let candidate = if host == "youtu.be" {
            match segments {
                [id] => Some((*id).to_owned()),
                _ => None,
            }
        } else {
            match segments {
                ["watch"] => url
                    .query_pairs()
                    .find(|(k, _)| k == "v")
                    .map(|(_, v)| v.into_owned()),
                ["shorts" | "live" | "embed" | "v", id] => Some((*id).to_owned()),
                _ => None,
            }
        };
        let candidate = candidate.ok_or(NOT_A_VIDEO_LINK)?;
        let id = VideoId::parse(&candidate)
            .ok_or("does not contain a valid YouTube video id (11 characters)")?;
        Ok(Self { id })
    }

    pub fn id(&self) -> &VideoId {
        &self.id
    }

    /// `https://www.youtube.com/watch?v=ID`
    pub fn canonical_url(&self) -> String {
        format!("https://www.youtube.com/watch?v={}", self.id)
    }

    /// `https://i.ytimg.com/vi/ID/hqdefault.jpg`
    pub fn thumbnail_url(&self) -> String {
        format!("https://i.ytimg.com/vi/{}/hqdefault.jpg", self.id)
    }
}

const NOT_A_VIDEO_LINK: &str =
    "must be a link to one YouTube video, e.g. https://www.youtube.com/watch?v=dQw4w9WgXcQ or https://youtu.be/dQw4w9WgXcQ";

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "dQw4w9WgXcQ";

    #[test]
    fn every_accepted_form_gives_the_canonical_link() {
        for raw in [
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "http://youtube.com/watch?v=dQw4w9WgXcQ",
            "youtube.com/watch?v=dQw4w9WgXcQ",
            "www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ&t=42s",
            "https://m.youtube.com/watch?v=dQw4w9WgXcQ&list=PLx",
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ",
            "youtu.be/dQw4w9WgXcQ?si=abc",
            "https://www.youtube.com/shorts/dQw4w9WgXcQ",
            "https://youtube.com/live/dQw4w9WgXcQ?feature=share",
            "https://www.youtube.com/embed/dQw4w9WgXcQ",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
            "https://youtube-nocookie.com/embed/dQw4w9WgXcQ",
            "https://www.youtube.com/v/dQw4w9WgXcQ",
            "HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com:443/watch?v=dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ/",
            "  https://youtu.be/dQw4w9WgXcQ  ",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=30",
        ] {
            let link = YoutubeLink::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(link.id().as_str(), ID, "{raw}");
            assert_eq!(
                link.canonical_url(),
                "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
            );
            assert_eq!(
                link.thumbnail_url(),
                "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg"
            );
        }
    }

    #[test]
    fn look_alikes_playlists_bad_ids_and_other_schemes_are_refused() {
        for raw in [
            "",
            "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
            "https://evil.example/youtube.com/watch?v=dQw4w9WgXcQ",
            "https://youtube.co/watch?v=dQw4w9WgXcQ",
            "https://notyoutube.com/watch?v=dQw4w9WgXcQ",
            "https://youtube.com@evil.example/watch?v=dQw4w9WgXcQ",
            "https://user:pass@youtube.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/playlist?list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf",
            "https://www.youtube.com/@SomeChannel",
            "https://www.youtube.com/channel/UC38IQsAvIsxxjztdMZQtwHA",
            "https://www.youtube.com/watch?v=dQw4w9WgXc",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",
            "https://www.youtube.com/watch?v=dQw4w9WgX%21Q",
            "https://www.youtube.com/watch",
            "https://www.youtube.com/",
            "https://youtu.be/",
            "https://youtu.be/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/dQw4w9WgXcQ",
            "javascript:alert(1)",
            "javascript://youtube.com/%0Aalert(1)",
            "ftp://youtube.com/watch?v=dQw4w9WgXcQ",
            "file:///etc/passwd",
            "data:text/html,hi",
            "https://www.youtube.com:8080/watch?v=dQw4w9WgXcQ",
            "https://you tube.com/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9\nWgXcQ",
            "https://youtube.com./watch?v=dQw4w9WgXcQ",
            "https://127.0.0.1/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/shorts/dQw4w9WgXcQ/extra",
        ] {
            assert!(YoutubeLink::parse(raw).is_err(), "accepted {raw:?}");
        }
        let long = format!(
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&pad={}",
            "x".repeat(2_048)
        );
        assert_eq!(
            YoutubeLink::parse(&long),
            Err("must be at most 2048 characters")
        );
    }
}

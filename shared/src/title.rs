//! A video's title, as the user typed it or as it comes from a file name.

use std::fmt;

use crate::error::FieldErrors;

/// A title: no control characters, no surrounding whitespace, 1 to [`Title::MAX_CHARS`]
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// The longest title, in characters.
    pub const MAX_CHARS: usize = 200;

    /// A title the user gave: longer than [`Title::MAX_CHARS`] is refused (the message names the
    /// limit); one with nothing left once control characters and whitespace are gone is none.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self::clean(raw))
    }

    /// The request's `title` field, when it has one: [`Title::parse`]d, a refusal recorded in
    /// `errors` under `title`.
    pub fn from_field(raw: Option<&str>, errors: &mut FieldErrors) -> Option<Self> {
        match Self::parse(raw?) {
            Ok(title) => title,
            Err(msg) => {
                errors.add("title", msg);
                None
            }
        }
    }

    /// A title from a file name: no folders, no extension, cut to [`Title::MAX_CHARS`].
    pub fn from_filename(name: &str) -> Option<Self> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let stem = match base.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => base,
        };
        Self::clean(stem)
    }

    fn clean(raw: &str) -> Option<Self> {
        let kept: String = raw.chars().filter(|c| !c.is_control()).collect();
        let cut: String = kept.trim().chars().take(Self::MAX_CHARS).collect();
        (!cut.is_empty()).then_some(Self(cut))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(name: &str) -> Option<String> {
        Title::from_filename(name).map(Title::into_string)
    }

    #[test]
    fn titles_come_from_file_names_without_folders_or_extensions() {
        assert_eq!(from_file("My Talk.mp4").as_deref(), Some("My Talk"));
        assert_eq!(
            from_file("C:\\fakepath\\clip.final.mov").as_deref(),
            Some("clip.final")
        );
        assert_eq!(from_file("/home/a/b.mp4").as_deref(), Some("b"));
        assert_eq!(from_file(".mp4").as_deref(), Some(".mp4"));
        assert_eq!(from_file("  \u{7}.mp4"), None);
        let long = from_file(&format!("{}.mp4", "x".repeat(500))).unwrap();
        assert_eq!(long.chars().count(), Title::MAX_CHARS);
    }

    #[test]
    fn a_typed_title_is_cleaned_and_a_long_one_refused() {
        assert_eq!(
            Title::parse(" \tHello\u{0} world \n")
                .unwrap()
                .unwrap()
                .as_str(),
            "Hello world"
        );
        assert_eq!(Title::parse("  \u{7} ").unwrap(), None);
        assert!(Title::parse(&"é".repeat(Title::MAX_CHARS))
            .unwrap()
            .is_some());
        let refused = Title::parse(&"é".repeat(Title::MAX_CHARS + 1)).unwrap_err();
        assert!(refused.contains("200"), "{refused}");
    }
}

//! The clip configuration every ingest route takes, with its defaults; it becomes the job's
//! `payload`.

use serde::Serialize;

use crate::error::FieldErrors;
use crate::http::Fields;

macro_rules! choice {
    ($(#[$meta:meta])* $name:ident, $field:literal, default $default:ident, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const FIELD: &'static str = $field;
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the exact text (case-sensitive); the `Err` is the field's message.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("must be one of {}", Self::ALLOWED.join(", "))),
                }
            }
        }

        impl Default for $name {
            fn default() -> Self { $name::$default }
        }
    };
}

choice!(
    /// What kind of video it is (guides the future highlight finder).
    VideoType, "video_type", default Auto, {
        Auto => "auto", Podcast => "podcast", Interview => "interview", TalkShow => "talk_show",
        Vlog => "vlog", Tutorial => "tutorial", Gaming => "gaming", Sports => "sports",
        News => "news", Other => "other",
    }
);

choice!(
    /// The clips' frame.
    AspectRatio, "aspect_ratio", default Vertical, {
        Vertical => "9:16", Square => "1:1", Landscape => "16:9", Portrait => "4:5",
    }
);

choice!(
    /// How long clips should be.
    ClipLengthPreset, "clip_length_preset", default Auto0To60, {
        Auto0To60 => "auto_0_60", Auto0To90 => "auto_0_90", S0To30 => "0_30",
        S30To60 => "30_60", S60To90 => "60_90", S90To180 => "90_180",
    }
);

/// The four options, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClipConfig {
    pub video_type: VideoType,
    pub aspect_ratio: AspectRatio,
    pub clip_length_preset: ClipLengthPreset,
    pub subtitle: bool,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            video_type: VideoType::default(),
            aspect_ratio: AspectRatio::default(),
            clip_length_preset: ClipLengthPreset::default(),
            subtitle: true,
        }
    }
}

/// The names of the configuration's fields.
pub const FIELDS: [&str; 4] = [
    "video_type",
    "aspect_ratio",
    "clip_length_preset",
    "subtitle",
];

impl ClipConfig {
    /// Takes the configuration fields out of a JSON object, recording problems in `fields`.
    pub fn from_json(fields: &mut Fields) -> Self {
        let mut cfg = Self::default();
        if let Some(v) = fields.string(VideoType::FIELD) {
            record(
                &mut fields.errors,
                VideoType::FIELD,
                VideoType::parse(&v),
                &mut cfg.video_type,
            );
        }
        if let Some(v) = fields.string(AspectRatio::FIELD) {
            record(
                &mut fields.errors,
                AspectRatio::FIELD,
                AspectRatio::parse(&v),
                &mut cfg.aspect_ratio,
            );
        }
        if let Some(v) = fields.string(ClipLengthPreset::FIELD) {
            record(
                &mut fields.errors,
                ClipLengthPreset::FIELD,
                ClipLengthPreset::parse(&v),
                &mut cfg.clip_length_preset,
            );
        }
        if let Some(v) = fields.bool("subtitle") {
            cfg.subtitle = v;
        }
        cfg
    }

    /// From form text fields (`name`, `value`): `subtitle` is `true`/`false` (also `1`/`0`,
    /// `on`/`off`, as HTML forms send).
    pub fn from_text(pairs: &[(String, String)], errors: &mut FieldErrors) -> Self {
        let mut cfg = Self::default();
        for (name, value) in pairs {
            let value = value.trim();
            match name.as_str() {
                "video_type" => record(
                    errors,
                    "video_type",
                    VideoType::parse(value),
                    &mut cfg.video_type,
                ),
                "aspect_ratio" => record(
                    errors,
                    "aspect_ratio",
                    AspectRatio::parse(value),
                    &mut cfg.aspect_ratio,
                ),
                "clip_length_preset" => record(
                    errors,
                    "clip_length_preset",
                    ClipLengthPreset::parse(value),
                    &mut cfg.clip_length_preset,
                ),
                "subtitle" => match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "on" | "yes" => cfg.subtitle = true,
                    "false" | "0" | "off" | "no" => cfg.subtitle = false,
                    _ => errors.add("subtitle", "must be true or false"),
                },
                _ => {}
            }
        }
        cfg
    }

    /// The job payload: all four fields.
    pub fn to_payload(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

fn record<T>(errors: &mut FieldErrors, field: &str, parsed: Result<T, String>, slot: &mut T) {
    match parsed {
        Ok(v) => *slot = v,
        Err(msg) => errors.add(field, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_the_payload() {
        assert_eq!(
            ClipConfig::default().to_payload(),
            json!({"video_type": "auto", "aspect_ratio": "9:16", "clip_length_preset": "auto_0_60", "subtitle": true})
        );
    }

    #[test]
    fn each_bad_value_is_named_with_the_allowed_values() {
        let map = json!({"video_type": "cats", "aspect_ratio": "3:2", "clip_length_preset": "long", "subtitle": "yes"});
        let mut f = Fields::new(map.as_object().unwrap().clone());
        ClipConfig::from_json(&mut f);
        assert_eq!(
            f.errors.get("aspect_ratio"),
            Some("must be one of 9:16, 1:1, 16:9, 4:5")
        );
        assert!(f.errors.get("video_type").unwrap().contains("podcast"));
        assert!(f
            .errors
            .get("clip_length_preset")
            .unwrap()
            .contains("auto_0_60"));
        assert_eq!(f.errors.get("subtitle"), Some("must be true or false"));
    }

    #[test]
    fn text_fields_parse_like_json_ones() {
        let pairs = vec![
            ("aspect_ratio".to_owned(), "1:1".to_owned()),
            ("subtitle".to_owned(), "false".to_owned()),
        ];
        let mut errors = FieldErrors::new();
        let cfg = ClipConfig::from_text(&pairs, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(
            (cfg.aspect_ratio, cfg.subtitle, cfg.video_type),
            (AspectRatio::Square, false, VideoType::Auto)
        );
    }
}

//! Status and source enums, with the one mapping to the strings the database stores.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and JSON) form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Reads the stored form back; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum!(
    /// Where a video came from.
    SourceType { Youtube => "youtube", Upload => "upload" }
);

stored_enum!(
    /// A video's life: `pending` → `processing` → `ready` | `failed`. `ready` is final.
    VideoStatus {
        Pending => "pending",
        Processing => "processing",
        Ready => "ready",
        Failed => "failed",
    }
);

stored_enum!(
    /// A job's life in the queue: `queued` → `running` → `completed` | `failed` (or back to
    /// `queued` for a retry or after an expired lease).
    JobStatus {
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
);

/// The job type the ingest routes create.
pub const JOB_TYPE_TRANSCRIPTION_AND_CLIPPING: &str = "transcription_and_clipping";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_strings_and_json_agree_and_round_trip() {
        for s in VideoStatus::ALL {
            assert_eq!(VideoStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in SourceType::ALL {
            assert_eq!(SourceType::parse(s.as_str()), Some(*s));
        }
        assert_eq!(JobStatus::parse("Queued"), None);
        assert_eq!(VideoStatus::parse("done"), None);
    }
}

//! What a request may choose about its stamp: where the mark goes, how
//! strong it is, how the output is encoded and which metadata it keeps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where the mark goes on the picture as a person sees it (after EXIF
/// orientation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
    Center,
    /// The mark's top-left corner, in pixels; the margin is not applied.
    At {
        x: u32,
        y: u32,
    },
}

impl FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "top-left" => Position::TopLeft,
            "top-right" => Position::TopRight,
            "bottom-left" => Position::BottomLeft,
            "bottom-right" => Position::BottomRight,
            "center" => Position::Center,
            other => {
                let parsed = other.split_once(',').and_then(|(x, y)| {
                    Some((x.trim().parse::<u32>().ok()?, y.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((x, y)) => Position::At { x, y },
                    None => {
                        return Err(format!(
                        "{other:?} is not top-left, top-right, bottom-left, bottom-right, center or X,Y"
                    ))
                    }
                }
            }
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::TopLeft => f.write_str("top-left"),
            Position::TopRight => f.write_str("top-right"),
            Position::BottomLeft => f.write_str("bottom-left"),
            Position::BottomRight => f.write_str("bottom-right"),
            Position::Center => f.write_str("center"),
            Position::At { x, y } => write!(f, "{x},{y}"),
        }
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which metadata the output drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripMetadata {
    /// Keep EXIF and the ICC profile as they came.
    None,
    /// Keep EXIF and the ICC profile, but remove the GPS block from EXIF.
    Gps,
    /// Keep neither EXIF nor the ICC profile.
    All,
}

/// The encoding of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// JPEG for JPEG input, PNG for PNG input.
    Same,
    /// Always JPEG (a PNG's transparency is flattened onto white).
    Jpeg,
}

/// Everything one stamp needs besides the bytes and the mark.
#[derive(Debug, Clone, PartialEq)]
pub struct StampOptions {
    /// A key of the compositor's marks.
    pub mark: String,
    pub position: Position,
    /// Distance from the edges for the corner and center positions, in pixels.
    pub margin: u32,
    /// 0.0..=1.0, multiplies the mark's own alpha.
    pub opacity: f32,
    /// JPEG quality 1..=100.
    pub quality: u8,
    pub format: OutputFormat,
    pub strip: StripMetadata,
    /// Declared width x height above this is refused before decoding.
    pub max_pixels: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_print_back() {
        for s in [
            "top-left",
            "top-right",
            "bottom-left",
            "bottom-right",
            "center",
            "12,34",
        ] {
            assert_eq!(s.parse::<Position>().unwrap().to_string(), s);
        }
        assert_eq!(
            " 5 , 6".parse::<Position>(),
            Ok(Position::At { x: 5, y: 6 })
        );
    }

    #[test]
    fn bad_positions_are_refused() {
        for s in ["", "left", "1,", "-1,2", "1,2,3", "a,b"] {
            assert!(s.parse::<Position>().is_err(), "{s}");
        }
    }
}

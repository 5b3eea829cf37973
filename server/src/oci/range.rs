//! Byte ranges: the `Range` header of blob GETs (one range; others are served whole, as RFC
//! 9110 allows) and the `Content-Range` header of upload chunks.

use std::ops::Range;

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole object.
    Whole,
    /// A non-empty range inside the object.
    Partial(Range<u64>),
    /// The range lies outside the object: answer 416.
    Unsatisfiable,
}

/// Interprets a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        if suffix == 0 {
            return RangeRequest::Unsatisfiable;
        }
        if size == 0 {
            // An empty blob has no part to send: `bytes 0-0/0` would claim a byte it lacks.
            return RangeRequest::Whole;
        }
        size.saturating_sub(suffix)..size
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return RangeRequest::Whole,
            }
        };
        if start >= size {
            return RangeRequest::Unsatisfiable;
        }
        start..end
    };
    RangeRequest::Partial(range)
}

/// Parses an upload chunk's `Content-Range` (`a-b`, inclusive; `bytes a-b/total` accepted)
/// into its start and length. `None` when malformed.
pub fn parse_content_range(header: &str) -> Option<(u64, u64)> {
    let h = header.trim();
    let h = h
        .strip_prefix("bytes=")
        .or_else(|| h.strip_prefix("bytes "))
        .unwrap_or(h);
    let h = h.split('/').next()?;
    let (start, end) = h.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let len = end.checked_sub(start)?.checked_add(1)?;
    Some((start, len))
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=2-4"), 10),
            RangeRequest::Partial(2..5)
        );
        assert_eq!(
            parse_range(Some("bytes=2-"), 10),
            RangeRequest::Partial(2..10)
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            RangeRequest::Partial(7..10)
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            RangeRequest::Partial(5..10)
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=4-2"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Whole);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 100)));
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, 100)));
        assert_eq!(parse_content_range("5-4"), None);
        assert_eq!(parse_content_range("x-y"), None);
        assert_eq!(parse_content_range(&format!("0-{}", u64::MAX)), None);
        assert_eq!(
            parse_content_range(&format!("1-{}", u64::MAX)),
            Some((1, u64::MAX))
        );
    }
}

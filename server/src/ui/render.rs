//! Turning chart texts into safe HTML: Markdown READMEs through an allow-list sanitiser, and
//! values.yaml as tokens the template escapes.

/// A README rendered from Markdown and sanitised: no scripts, no event handlers, no styles,
/// no `javascript:` links, no images from elsewhere (the page loads nothing from other sites).
/// Headings move two levels down: the README sits under the page's own `h1` and its
/// "README" `h2`.
pub fn readme_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};
    let lower = |level: HeadingLevel| match level {
        HeadingLevel::H1 => HeadingLevel::H3,
        HeadingLevel::H2 => HeadingLevel::H4,
        HeadingLevel::H3 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    };
    let parser = pulldown_cmark::Parser::new_ext(
        markdown,
        pulldown_cmark::Options::ENABLE_TABLES | pulldown_cmark::Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: lower(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(lower(level))),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::Builder::default()
        .rm_tags(["img"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto"].into())
        .clean(&html)
        .to_string()
}

/// One line of values.yaml, cut into the parts that are coloured.
#[derive(Debug, Default, PartialEq)]
pub struct YamlLine {
    pub indent: String,
    pub key: String,
    /// `:` and what follows, up to a comment.
    pub value: String,
    pub comment: String,
}

/// Splits values.yaml into lines of key, value and comment (a highlighter for reading, not a
/// parser: anything it does not recognise stays in `value`).
pub fn yaml_lines(text: &str) -> Vec<YamlLine> {
    text.lines().map(yaml_line).collect()
}

fn yaml_line(line: &str) -> YamlLine {
    let body = line.trim_start();
    let indent = line[..line.len() - body.len()].to_owned();
    if body.starts_with('#') {
        return YamlLine {
            indent,
            comment: body.to_owned(),
            ..YamlLine::default()
        };
    }
    let (code, comment) = split_comment(body);
    let key_end = key_end(code);
    YamlLine {
        indent,
        key: code[..key_end].to_owned(),
        value: code[key_end..].to_owned(),
        comment: comment.to_owned(),
    }
}

/// Where a `key:` prefix ends (0 when the line has none).
fn key_end(code: &str) -> usize {
    let start = code.strip_prefix("- ").map_or(0, |_| 2);
    match code[start..].find(':') {
        Some(i)
            if code[start..start + i]
                .chars()
                .all(|c| c.is_alphanumeric() || "_-./".contains(c))
                && i > 0 =>
        {
            start + i
        }
        _ => 0,
    }
}

/// Splits off a ` #` comment that is not inside quotes.
fn split_comment(code: &str) -> (&str, &str) {
    let (mut single, mut double) = (false, false);
    let bytes = code.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || bytes[i - 1] == b' ') => {
                return (&code[..i], &code[i..]);
            }
            _ => {}
        }
    }
    (code, "")
}

/// Whether a URL from a chart (home, sources) may become a link: http(s) only, so a
/// `javascript:` or `data:` URL is shown as text, not made clickable.
pub fn is_web_link(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Largest icon embedded as a data: URI that is shown.
const MAX_DATA_ICON: usize = 256 * 1024;

/// Where the chart's icon may be loaded from: an image embedded as a data: URI, or (when
/// `remote` is allowed) an https URL. Anything else (javascript:, http:, other data) is not
/// shown; an `<img>` never runs an SVG's scripts either way.
pub fn chart_icon(icon: Option<&str>, remote: bool) -> Option<String> {
    let icon = icon?.trim();
    let lower = icon.to_ascii_lowercase();
    let embedded = ["png", "jpeg", "gif", "webp", "svg+xml"]
        .iter()
        .any(|kind| {
            lower.starts_with(&format!("data:image/{kind};"))
                || lower.starts_with(&format!("data:image/{kind},"))
        });
    let allowed = (embedded && icon.len() <= MAX_DATA_ICON)
        || (remote && lower.starts_with("https://") && !icon.contains(char::is_whitespace));
    allowed.then(|| icon.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readmes_lose_everything_active() {
        let html = readme_html(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n<a href=\"https://ok.example\" onclick=\"alert(1)\">ok</a>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        for bad in ["<script", "javascript:", "onerror", "onclick", "<img"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
    }

    #[test]
    fn values_lines_are_split_for_colouring() {
        let lines = yaml_lines(
            "# top\nimage:\n  tag: \"1.0 # not a comment\" # real\n  - name: x\nplain text",
        );
        assert_eq!(lines[0].comment, "# top");
        assert_eq!(
            (lines[1].key.as_str(), lines[1].value.as_str()),
            ("image", ":")
        );
        assert_eq!(lines[2].indent, "  ");
        assert_eq!(lines[2].key, "tag");
        assert_eq!(lines[2].value, ": \"1.0 # not a comment\" ");
        assert_eq!(lines[2].comment, "# real");
        assert_eq!(lines[3].key, "- name");
        assert_eq!(
            (lines[4].key.as_str(), lines[4].value.as_str()),
            ("", "plain text")
        );
    }

    #[test]
    fn icons_only_from_allowed_sources() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        assert_eq!(chart_icon(Some(png), false).as_deref(), Some(png));
        assert!(chart_icon(Some("data:image/svg+xml,<svg/>"), false).is_some());
        let remote = "https://example.com/icon.png";
        assert_eq!(
            chart_icon(Some(remote), false),
            None,
            "remote icons are opt-in"
        );
        assert_eq!(chart_icon(Some(remote), true).as_deref(), Some(remote));
        for refused in [
            "javascript:alert(1)",
            "http://example.com/icon.png",
            "data:text/html,<script>alert(1)</script>",
            "JaVaScRiPt:alert(1)",
        ] {
            assert_eq!(chart_icon(Some(refused), true), None, "{refused}");
        }
        let huge = format!("data:image/png;base64,{}", "A".repeat(MAX_DATA_ICON));
        assert_eq!(chart_icon(Some(&huge), false), None);
        assert_eq!(chart_icon(None, true), None);
    }

    #[test]
    fn only_web_urls_become_links() {
        assert!(is_web_link("https://example.com/x"));
        assert!(is_web_link("HTTP://example.com"));
        for text in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,x",
            "//evil",
            "ftp://x",
        ] {
            assert!(!is_web_link(text), "{text}");
        }
    }
}

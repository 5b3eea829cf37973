//! A horizontal bar plot of the largest repositories, drawn by the template as inline SVG
//! (no script, no external image: the Content-Security-Policy allows neither).

use super::human_size;

/// One bar: a label above a bar whose length is its share of the largest.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bar {
    pub label: String,
    pub value: String,
    /// Length in percent of the plot's width (the largest bar is 100).
    pub percent: f64,
    /// Top of this bar's label, in pixels.
    pub y: u32,
}

/// Height of one label and bar, in pixels.
pub(super) const ROW_HEIGHT: u32 = 34;

/// The bars of a plot and what it leaves out.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plot {
    pub bars: Vec<Bar>,
    /// How many repositories are not drawn, and their bytes together.
    pub others: usize,
    pub others_size: String,
}

/// The `n` largest of `sizes`, largest first, each bar's length relative to the largest (the
/// rest are summed in words: as one bar they would dwarf the others). No bars when fewer than
/// two have any size: one bar says nothing the table does not.
pub(super) fn top_bars(sizes: &[(&str, u64)], n: usize) -> Plot {
    let mut sorted: Vec<(&str, u64)> = sizes.iter().copied().filter(|(_, s)| *s > 0).collect();
    if sorted.len() < 2 {
        return Plot::default();
    }
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let rest = sorted.split_off(n.min(sorted.len()));
    let largest = sorted[0].1.max(1) as f64;
    let bars = sorted
        .into_iter()
        .zip(0..)
        .map(|((label, size), i)| Bar {
            label: label.to_owned(),
            value: human_size(size),
            // At least a sliver, so a small repository still shows a bar.
            percent: ((size as f64 / largest) * 1000.0).round().max(5.0) / 10.0,
            y: i * ROW_HEIGHT,
        })
        .collect();
    Plot {
        bars,
        others: rest.len(),
        others_size: human_size(rest.iter().map(|(_, s)| s).sum()),
    }
}

/// The plot's height in pixels.
pub(super) fn height(bars: &[Bar]) -> u32 {
    bars.len() as u32 * ROW_HEIGHT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_first_then_the_rest_in_words() {
        let plot = top_bars(&[("a", 10), ("b", 40), ("c", 20), ("d", 0), ("e", 5)], 2);
        let labels: Vec<&str> = plot.bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["b", "c"]);
        assert_eq!(plot.bars[0].percent, 100.0);
        assert_eq!(plot.bars[1].percent, 50.0);
        assert_eq!(plot.bars[1].y, ROW_HEIGHT);
        assert_eq!((plot.others, plot.others_size.as_str()), (2, "15 B"));
    }

    #[test]
    fn small_sizes_keep_a_visible_bar() {
        let plot = top_bars(&[("big", 1 << 30), ("tiny", 1)], 10);
        assert_eq!(plot.bars[1].percent, 0.5);
        assert_eq!(plot.others, 0);
    }

    #[test]
    fn no_plot_for_fewer_than_two() {
        assert!(top_bars(&[("a", 10), ("b", 0)], 10).bars.is_empty());
        assert!(top_bars(&[], 10).bars.is_empty());
    }
}

//! PNG charts with `plotters`: a run's curves (loss, learning rate, accuracy), the diagnostics'
//! spectrum and similarity histograms (lines), and the 2-D map of its embedding (points).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;

/// The font every chart's text is drawn with, embedded in the binary (DejaVu Sans; licence in
/// `ssl/assets/fonts/LICENSE`): a system font would differ between machines, and where there
/// is none the plots could not be drawn at all.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font as "sans-serif", once (plotters' `ab_glyph` text backend
/// draws only registered fonts).
fn register_font() -> crate::Result<()> {
    static REGISTERED: std::sync::OnceLock<crate::Result<()>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| crate::Error::msg("the embedded plot font cannot be read"))
        })
        .clone()
}

/// Named series of `(x, y)` points: a curve per name, or a class of points.
pub type Series<'a> = [(&'a str, Vec<(f64, f64)>)];

type Chart<'a> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One line chart of `series`, titled, with axis labels `(x, y)`, into `path` (PNG, 640×400).
/// Nothing is written when no point is finite.
pub fn line_chart(path: &Path, title: &str, labels: (&str, &str), series: &Series) -> crate::Result<()> {
    draw(path, title, labels, series, Marker::Line, |chart, i, name, pts| {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
        Ok(())
    })
}

/// A scatter chart: each group (a class) of points in its own colour, named in the legend.
pub fn scatter_chart(path: &Path, title: &str, labels: (&str, &str), groups: &Series) -> crate::Result<()> {
    draw(path, title, labels, groups, Marker::Dot, |chart, i, name, pts| {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 2, color.filled())))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 7, y), 3, color.filled()));
        Ok(())
    })
}

type DrawResult = Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// How a series is marked in the legend: a stroke (curves) or a dot (groups of points).
#[derive(Clone, Copy)]
enum Marker {
    Line,
    Dot,
}

/// The chart's own size in pixels.
const CHART_SIZE: (u32, u32) = (640, 400);
/// Beyond this many series the legend moves to a column beside the chart, where it hides
/// no curve (a ViT's blocks, ten classes).
const LEGEND_INSIDE_MAX: usize = 6;
/// The width of that column.
const LEGEND_COLUMN: u32 = 220;

/// The frame every chart shares (white canvas, title, mesh, legend), around `each` drawing
/// series `i` named `name`.
fn draw(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &Series,
    marker: Marker,
    mut each: impl FnMut(&mut Chart<'_>, usize, &str, &[(f64, f64)]) -> DrawResult,
) -> crate::Result<()> {
    let Some((xs, ys)) = bounds(series) else { return Ok(()) };
    register_font()?;
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let beside = series.len() > LEGEND_INSIDE_MAX;
    let width = CHART_SIZE.0 + if beside { LEGEND_COLUMN } else { 0 };
    let root = BitMapBackend::new(path, (width, CHART_SIZE.1)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot_area, legend_area) = root.split_horizontally(CHART_SIZE.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|e| err(&e))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let finite: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        each(&mut chart, i, name, &finite).map_err(|e| err(&e))?;
    }
    if beside {
        legend_column(&legend_area, series, marker).map_err(|e| err(&e))?;
    } else {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
    }
    Ok(root.present().map_err(|e| err(&e))?)
}

/// The legend as a column of its own: each series' marker in its palette colour, then its
/// name, rows shrinking to fit the height.
fn legend_column(area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, series: &Series, marker: Marker) -> DrawResult {
    let top = 40;
    let row = ((CHART_SIZE.1 as i32 - top) / series.len().max(1) as i32).clamp(6, 18);
    let font = ("sans-serif", row.min(14)).into_font();
    for (i, (name, _)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let y = top + i as i32 * row;
        match marker {
            Marker::Line => area.draw(&PathElement::new(vec![(4, y), (22, y)], color.stroke_width(2)))?,
            Marker::Dot => area.draw(&Circle::new((13, y), 3, color.filled()))?,
        }
        area.draw(&Text::new(name.to_string(), (28, y - row.min(14) / 2), font.clone()))?;
    }
    Ok(())
}

/// The x and y ranges of the finite points, the y range padded by 5% (a flat series gets a
/// range of its own); `None` when there is no finite point.
fn bounds(series: &Series) -> Option<(Range<f64>, Range<f64>)> {
    let pts = || series.iter().flat_map(|s| s.1.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
    pts().next()?;
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    Some((x0..x1, (y0 - pad)..(y1 + pad)))
}

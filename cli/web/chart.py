"""The throughput chart: stage completions per bucket over the last hour, as inline SVG drawn
on the server (no script, no library; CSP-safe: presentation attributes, no style)."""

from __future__ import annotations

from markupsafe import Markup, escape

from projections.web_queries import Throughput

COLOURS = ("#2b6cb0", "#2f855a", "#b7791f", "#9b2c2c", "#6b46c1", "#2c7a7b")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 170, 44, 22, 10


def throughput_svg(t: Throughput) -> Markup:
    buckets = max((len(v) for v in t.series.values()), default=0)
    peak = max((max(v) for v in t.series.values() if v), default=0)
    top = max(peak, 1)
    plot_w, plot_h = WIDTH - LEFT - 220, HEIGHT - BOTTOM - TOP
    step = plot_w / max(buckets - 1, 1)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" class="chart" '
        f'aria-label="Stage completions per {t.bucket_seconds // 60} minutes, last hour">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 8}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11">-60 min</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 6}" text-anchor="end" font-size="11">now</text>',
    ]
    for i, (stage, values) in enumerate(t.series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{LEFT + j * step:.1f},{y(v):.1f}" for j, v in enumerate(values))
        name = escape(stage)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{name}: {sum(values)} in the last hour</title></polyline>"
        )
        ly = TOP + 12 + i * 16
        parts.append(
            f'<rect x="{LEFT + plot_w + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{LEFT + plot_w + 26}" y="{ly}" font-size="11">{name} '
            f"({sum(values)})</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))

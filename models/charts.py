"""A tiny SVG line-chart writer for the evaluation report (matplotlib is not in the pinned stack)."""
from __future__ import annotations

from html import escape
from typing import Sequence

Series = tuple[str, Sequence[tuple[float, float]], str, str | None]  # label, points, colour, dash pattern


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               x_range: tuple[float, float], y_range: tuple[float, float] | None,
               diagonal: bool = False, width: int = 760, height: int = 460) -> str:
    """SVG text of a line chart with axes, ticks, legend; y_range None = from 0 to the data maximum."""
    left, right, top, bottom = 70, 220, 40, 55
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = x_range
    if y_range is None:
        ymax = max((y for _, pts, _, _ in series for _, y in pts), default=1.0)
        y_range = (0.0, float(ymax) * 1.05 or 1.0)
    y0, y1 = y_range

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>']
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        yv = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{sx(xv):.1f}" y1="{top + ph}" x2="{sx(xv):.1f}" y2="{top + ph + 5}" stroke="#333"/>')
        out.append(f'<text x="{sx(xv):.1f}" y="{top + ph + 18}" text-anchor="middle">{xv:.2g}</text>')
        out.append(f'<line x1="{left - 5}" y1="{sy(yv):.1f}" x2="{left + pw}" y2="{sy(yv):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.2g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="16" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {top + ph / 2})">'
               f'{escape(y_label)}</text>')
    if diagonal:
        out.append(f'<line x1="{sx(x0)}" y1="{sy(y0)}" x2="{sx(x1)}" y2="{sy(y1)}" stroke="#999" stroke-dasharray="2 3"/>')
    for k, (label, points, colour, dash) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for x, y in points:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        ly = top + 10 + 18 * k
        out.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 40}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{left + pw + 45}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)

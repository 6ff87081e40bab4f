"""A slow, exact polygon-rectangle overlap for checking the drizzle kernels (2-D and cube)."""

from __future__ import annotations


def rect_overlap(poly, x0, x1, y0, y1) -> float:
    """Area of polygon ∩ rectangle, by clipping against the 4 half-planes."""
    def clip(pts, inside, cross):
        out = []
        for i in range(len(pts)):
            p, q = pts[i - 1], pts[i]
            if inside(q):
                if not inside(p):
                    out.append(cross(p, q))
                out.append(q)
            elif inside(p):
                out.append(cross(p, q))
        return out

    def at_x(b):
        return lambda p, q: (b, p[1] + (b - p[0]) * (q[1] - p[1]) / (q[0] - p[0]))

    def at_y(b):
        return lambda p, q: (p[0] + (b - p[1]) * (q[0] - p[0]) / (q[1] - p[1]), b)

    pts = list(poly)
    pts = clip(pts, lambda p: p[0] >= x0, at_x(x0))
    pts = clip(pts, lambda p: p[0] <= x1, at_x(x1))
    pts = clip(pts, lambda p: p[1] >= y0, at_y(y0))
    pts = clip(pts, lambda p: p[1] <= y1, at_y(y1))
    if len(pts) < 3:
        return 0.0
    return abs(0.5 * sum(pts[i - 1][0] * pts[i][1] - pts[i][0] * pts[i - 1][1] for i in range(len(pts))))

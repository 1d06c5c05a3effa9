package web

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/recorder"
)

// Charts are drawn on the server as inline SVG: no script, no third-party
// library, nothing the Content-Security-Policy has to allow. Every chart has
// a <title> and an aria-label, and the numbers are also in text next to it.

// seriesColors are distinguishable in colour and for colour-blind readers
// (Okabe–Ito palette), in series order.
var seriesColors = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// esc escapes text for SVG (XML) content and attributes.
func esc(s string) string { return template.HTMLEscapeString(s) }

// dayBars draws a stacked bar chart of per-day counts, one bar per day from
// first to last (inclusive), with a legend. format formats the axis maximum.
func dayBars(label string, first, last time.Time, data []recorder.DayCount, format func(int64) string) template.HTML {
	var days []time.Time
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	var series []string
	by := map[string]map[time.Time]int64{}
	for _, c := range data {
		if by[c.Series] == nil {
			by[c.Series] = map[time.Time]int64{}
			series = append(series, c.Series)
		}
		by[c.Series][c.Day] += c.N
	}
	sort.Strings(series)
	var max int64
	for _, d := range days {
		var sum int64
		for _, s := range series {
			sum += by[s][d]
		}
		max = maxInt(max, sum)
	}
	const w, h, left, bottom, top = 640, 220, 48, 28, 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`, w, h+24, esc(label), esc(label))
	plotH := float64(h - bottom - top)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`, left, h-bottom, w, h-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="tick" text-anchor="end">%s</text>`, left-6, top+10, esc(format(max)))
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="tick" text-anchor="end">0</text>`, left-6, h-bottom)
	slot := float64(w-left) / float64(max1(len(days)))
	for i, d := range days {
		x := float64(left) + float64(i)*slot + slot*0.15
		y := float64(h - bottom)
		for si, s := range series {
			n := by[s][d]
			if n == 0 || max == 0 {
				continue
			}
			bh := plotH * float64(n) / float64(max)
			y -= bh
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x, y, slot*0.7, bh, seriesColors[si%len(seriesColors)], d.Format("Jan 2"), esc(s), esc(format(n)))
		}
		if (len(days)-1-i)%2 == 0 || len(days) <= 8 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, x+slot*0.35, h-bottom+16, d.Format("Jan 2"))
		}
	}
	lx := left
	for si, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" class="legend">%s</text>`,
			lx, h+8, seriesColors[si%len(seriesColors)], lx+16, h+18, esc(s))
		lx += 24 + 8*len(s)
	}
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="legend">nothing in this period</text>`, left, h/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// hBars draws labelled horizontal bars, largest first.
func hBars(label string, counts []recorder.Count, color string) template.HTML {
	const w, row, labelW = 640, 26, 260
	var max int64
	for _, c := range counts {
		max = maxInt(max, c.N)
	}
	h := row*len(counts) + 8
	if len(counts) == 0 {
		h = row + 8
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`, w, h, esc(label), esc(label))
	if len(counts) == 0 {
		b.WriteString(`<text x="0" y="20" class="legend">nothing in this period</text>`)
	}
	for i, c := range counts {
		y := i*row + 4
		text := c.Label
		if len(text) > 38 {
			text = text[:37] + "…"
		}
		bw := 0.0
		if max > 0 {
			bw = float64(w-labelW-60) * float64(c.N) / float64(max)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="legend" text-anchor="end">%s<title>%s</title></text>`, labelW-8, y+16, esc(text), esc(c.Label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y+3, bw, row-8, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="legend">%d</text>`, float64(labelW)+bw+6, y+16, c.N)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// humanBytes formats a byte count (1.5 MiB).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func itoa(n int64) string { return fmt.Sprint(n) }

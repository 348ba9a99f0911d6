package output

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressBar reports a transfer. On a terminal it redraws one line with a
// bar, the percentage, the bytes and the rate; elsewhere (logs, pipes) it
// writes a plain line at every tenth of the way.
type ProgressBar struct {
	w     io.Writer
	tty   bool
	label string
	now   func() time.Time

	mu       sync.Mutex
	start    time.Time
	lastDraw time.Time
	lastStep int64 // tenths reported so far (plain lines)
	drawn    bool
}

const barWidth = 30

// NewProgressBar returns a bar labelled label that writes to w, redrawing
// one line when tty is set; now is the clock (nil: time.Now).
func NewProgressBar(w io.Writer, tty bool, label string, now func() time.Time) *ProgressBar {
	if now == nil {
		now = time.Now
	}
	return &ProgressBar{w: w, tty: tty, label: label, now: now, start: now(), lastStep: -1}
}

// Update records that done of total bytes are through; total <= 0 means
// unknown. It is safe for concurrent use.
func (p *ProgressBar) Update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	complete := total > 0 && done >= total
	if p.tty {
		if !complete && p.drawn && now.Sub(p.lastDraw) < 100*time.Millisecond {
			return
		}
		p.lastDraw, p.drawn = now, true
		fmt.Fprintf(p.w, "\r%s %s\x1b[K", p.label, p.line(done, total, now, true))
		return
	}
	step := int64(0)
	if total > 0 {
		step = min(done*10/total, 10)
	} else {
		step = done >> 26 // a line every 64 MiB when the size is unknown
	}
	if step == p.lastStep {
		return
	}
	p.lastStep = step
	fmt.Fprintf(p.w, "%s: %s\n", p.label, p.line(done, total, now, false))
}

// Finish ends the bar's line on a terminal.
func (p *ProgressBar) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		io.WriteString(p.w, "\n")
		p.drawn = false
	}
}

// line renders the state of the transfer.
func (p *ProgressBar) line(done, total int64, now time.Time, bar bool) string {
	var b strings.Builder
	if total > 0 {
		pct := min(done*100/total, 100)
		if bar {
			fill := int(pct * barWidth / 100)
			b.WriteString("[" + strings.Repeat("=", fill) + strings.Repeat(" ", barWidth-fill) + "] ")
		}
		fmt.Fprintf(&b, "%3d%%  %s / %s", pct, Bytes(done), Bytes(total))
	} else {
		b.WriteString(Bytes(done))
	}
	if el := now.Sub(p.start); el > 0 {
		rate := int64(float64(done) / el.Seconds())
		fmt.Fprintf(&b, "  %s/s", Bytes(rate))
	}
	return b.String()
}

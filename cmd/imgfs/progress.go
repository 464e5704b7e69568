package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/index"
)

// progress draws one status line on a terminal while long work runs. It draws nothing when stderr is
// not a terminal or --quiet was given. Several workers report into it; each has a slot.
type progress struct {
	out     io.Writer
	enabled bool
	what    string

	mu     sync.Mutex
	slots  []index.Progress
	start  time.Time
	last   time.Time
	drawn  bool
	closed bool
}

func newProgress(quiet bool, what string, slots int) *progress {
	on := !quiet && term.IsTerminal(int(os.Stderr.Fd()))
	return &progress{out: os.Stderr, enabled: on, what: what, slots: make([]index.Progress, slots), start: time.Now()}
}

// streamSlot is slot for the indexing of a compressed stream (no member count).
func (p *progress) streamSlot(i int) func(compression.Progress) {
	f := p.slot(i)
	if f == nil {
		return nil
	}
	return func(pr compression.Progress) { f(index.Progress{Bytes: pr.Bytes, Total: pr.Total}) }
}

// slot returns the callback for worker i.
func (p *progress) slot(i int) func(index.Progress) {
	if p == nil || !p.enabled {
		return nil
	}
	return func(pr index.Progress) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		if i >= len(p.slots) { // workers not counted in advance (verify)
			p.slots = append(p.slots, make([]index.Progress, i+1-len(p.slots))...)
		}
		p.slots[i] = pr
		now := time.Now()
		if now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		p.last = now
		p.draw(now)
	}
}

func (p *progress) draw(now time.Time) {
	var entries, bytes, total int64
	for _, s := range p.slots {
		entries += s.Entries
		bytes += s.Bytes
		total += s.Total
	}
	secs := now.Sub(p.start).Seconds()
	rate := ""
	if secs > 0.2 {
		rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(bytes)/secs)))
	}
	of := "" // a total not known beforehand (hashes) is not shown
	if total > 0 {
		of = fmt.Sprintf(" of %s (%d%%)", humanBytes(total), bytes*100/total)
	}
	line := fmt.Sprintf("%s: %s entries, %s%s%s", p.what, commas(entries), humanBytes(bytes), of, rate)
	fmt.Fprintf(p.out, "\r%s\x1b[K", line)
	p.drawn = true
}

// done clears the status line.
func (p *progress) done() {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.out, "\r\x1b[K")
	}
	p.closed = true
}

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

func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

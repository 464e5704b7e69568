package fs

import (
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func TestPause(t *testing.T) {
	t.Parallel()
	var p Pause
	if st := p.enter(nil); st != fuse.OK {
		t.Fatalf("enter: %v", st)
	}
	// Pause waits for the running change.
	paused := make(chan func())
	go func() { paused <- p.Pause() }()
	select {
	case <-paused:
		t.Fatal("Pause returned while a change was running")
	case <-time.After(50 * time.Millisecond):
	}
	p.leave()
	resume := <-paused

	// A change waits for the pause; an interrupt ends the wait with EINTR.
	cancel := make(chan struct{})
	got := make(chan fuse.Status)
	go func() { got <- p.enter(cancel) }()
	close(cancel)
	if st := <-got; st != fuse.EINTR {
		t.Errorf("interrupted enter: %v, want EINTR", st)
	}
	go func() { got <- p.enter(make(chan struct{})) }()
	resume()
	resume() // twice is harmless
	if st := <-got; st != fuse.OK {
		t.Errorf("enter after resume: %v", st)
	}
	p.leave()

	// A second pause waits for the first to end.
	r1 := p.Pause()
	second := make(chan func())
	go func() { second <- p.Pause() }()
	r1()
	(<-second)()
	if st := p.enter(nil); st != fuse.OK {
		t.Errorf("enter after both pauses: %v", st)
	}
	p.leave()
}

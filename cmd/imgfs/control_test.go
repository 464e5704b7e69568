package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeFreezer struct {
	mu     sync.Mutex
	frozen atomic.Int32
	synced atomic.Int32
}

func (f *fakeFreezer) Freeze() func() {
	f.mu.Lock()
	f.frozen.Add(1)
	return func() { f.frozen.Add(-1); f.mu.Unlock() }
}

func (f *fakeFreezer) Sync() error { f.synced.Add(1); return nil }

func TestControlFreeze(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeFreezer{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := serveControl(ctx, dir, f, log); err != nil {
		t.Fatal(err)
	}
	if err := serveControl(ctx, dir, f, log); err == nil {
		t.Error("a second live mount of the same upper dir was allowed")
	}
	thaw, live, err := freezeLive(dir)
	if err != nil || !live {
		t.Fatalf("freezeLive: live %v, %v", live, err)
	}
	if f.frozen.Load() != 1 || f.synced.Load() != 1 {
		t.Errorf("after freeze: frozen %d synced %d", f.frozen.Load(), f.synced.Load())
	}
	thaw()
	deadline := time.Now().Add(5 * time.Second)
	for f.frozen.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.frozen.Load() != 0 {
		t.Error("still frozen after thaw")
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	if _, live, _ := freezeLive(t.TempDir()); live {
		t.Error("an unrelated directory answered as live")
	}
}

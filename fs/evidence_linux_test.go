package fs

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountOptionsEvidence(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	plain := mountOptions(Options{}, false, log)
	ev := mountOptions(Options{Evidence: true}, false, log)
	if plain.DirectMountFlags&(syscall.MS_NOEXEC|unix.MS_NOSYMFOLLOW) != 0 || slices.Contains(plain.Options, "noexec") {
		t.Errorf("a plain mount asks for noexec or nosymfollow: %#x %v", plain.DirectMountFlags, plain.Options)
	}
	want := uintptr(syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | unix.MS_NOSYMFOLLOW)
	if ev.DirectMountFlags != want || !slices.Contains(ev.Options, "noexec") || !slices.Contains(ev.Options, "ro") {
		t.Errorf("evidence mount: flags %#x (want %#x), options %v", ev.DirectMountFlags, want, ev.Options)
	}
	if slices.Contains(ev.Options, "nosymfollow") {
		t.Errorf("nosymfollow in the options fusermount gets (it refuses what it does not know): %v", ev.Options)
	}
}

// TestFlagsOfAndNoSymfollow reads a mount's flags from the kernel, and sets nosymfollow on a mount
// that lacks it as ensureNoSymfollow does after a fusermount mount (needs root).
func TestFlagsOfAndNoSymfollow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	f, err := FlagsOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != "nosuid,nodev,noexec" {
		t.Fatalf("flags %q", f)
	}
	ensureNoSymfollow(dir, slog.New(slog.DiscardHandler))
	if f, err = FlagsOf(dir); err != nil || f.String() != "nosuid,nodev,noexec,nosymfollow" {
		t.Fatalf("after ensureNoSymfollow: %q %v", f, err)
	}
	os.WriteFile(dir+"/target", []byte("x"), 0o644)
	os.Symlink("target", dir+"/link")
	if _, err := os.Stat(dir + "/link"); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("following a symlink on the mount: %v, want ELOOP", err)
	}
}

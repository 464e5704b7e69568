package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExitCodes holds the convention of README "Exit status": 0 success, 1 failure, 2 usage error
// (unknown command or flag, wrong arguments, a flag value that does not parse); which is grep's
// 0/1/2. Each case runs the command in-process and maps its error as main does.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.tar")
	notArchive := filepath.Join(dir, "text.tar")
	if err := os.WriteFile(notArchive, []byte("just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	mnt := t.TempDir()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--version"}, 0},
		{[]string{"cache", "ls", "--cache-dir", cache}, 0},
		{[]string{"cache", "prune", "--all", "--cache-dir", cache}, 0},

		{[]string{"nosuch"}, 2},
		{[]string{"--bogus"}, 2},
		{[]string{"mount", "--bogus", "a", "b"}, 2},
		{[]string{"mount", "a"}, 2},
		{[]string{"mount", "--cache-max-size", "lots", missing, mnt}, 2},
		{[]string{"inspect"}, 2},
		{[]string{"verify", missing, "extra"}, 2}, // inspect takes a stack of archives; verify one
		{[]string{"export"}, 2},
		{[]string{"commit"}, 2},
		{[]string{"import"}, 2},
		{[]string{"diff"}, 2},
		{[]string{"unmount"}, 2},
		{[]string{"cache", "nosuch"}, 2},
		{[]string{"cache", "ls", "extra"}, 2},
		{[]string{"cache", "prune", "--cache-dir", cache}, 2},
		{[]string{"cache", "prune", "--max-size", "10Q", "--cache-dir", cache}, 2},
		{[]string{"cache", "prune", "--older-than", "soon", "--cache-dir", cache}, 2},

		{[]string{"inspect", "--cache-dir", cache, missing}, 1},
		{[]string{"inspect", "--cache-dir", cache, notArchive}, 1},
		{[]string{"mount", "--cache-dir", cache, missing, mnt}, 1},
		{[]string{"export", "--cache-dir", cache, "-o", filepath.Join(dir, "out.tar"), missing}, 1},

		{[]string{"which", "--cache-dir", cache, missing, "/etc/passwd"}, 2}, // grep: trouble
	} {
		t.Run(filepath.Base(tc.args[0])+" "+tc.args[len(tc.args)-1], func(t *testing.T) {
			err := newApp().RunContext(context.Background(), append([]string{"imgfs"}, tc.args...))
			if got := exitCode(err); got != tc.want {
				t.Errorf("imgfs %v: exit %d, want %d (error: %v)", tc.args, got, tc.want, err)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// TestErrorMessages: inputs that used to fail with an internal or misleading message say what is wrong.
func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T) error
		want string
	}{
		{"SOURCE_DATE_EPOCH past what a tar holds", func(t *testing.T) error {
			t.Setenv("SOURCE_DATE_EPOCH", "99999999999")
			_, err := creationTime()
			return err
		}, "SOURCE_DATE_EPOCH=99999999999: out of range for a tar mtime (max 8589934591, 2242-03-16T12:56:31Z)"},
		{"SOURCE_DATE_EPOCH not a number", func(t *testing.T) error {
			t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
			_, err := creationTime()
			return err
		}, `SOURCE_DATE_EPOCH="yesterday": want seconds since 1970`},
		{"short text, not a tar", func(t *testing.T) error {
			return copyCheckedTar(context.Background(), io.Discard, strings.NewReader("hello text\n"), "t.gz")
		}, "t.gz: not a tar archive"},
		{"long text, not a tar", func(t *testing.T) error {
			return copyCheckedTar(context.Background(), io.Discard, strings.NewReader(strings.Repeat("text ", 300)), "t.gz")
		}, "t.gz: not a tar archive"},
		{"a tar cut short", func(t *testing.T) error {
			b := tartest.Tar(t, tartest.File("a", "a"), tartest.File("b", strings.Repeat("b", 4096)))
			return copyCheckedTar(context.Background(), io.Discard, bytes.NewReader(b[:1536]), "cut.tar")
		}, `cut.tar: truncated in member "b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := func() (any, error) { t.Setenv("SOURCE_DATE_EPOCH", "8589934591"); return creationTime() }(); err != nil {
		t.Errorf("the latest tar mtime refused: %v", err)
	}
}

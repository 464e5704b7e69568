package kinderr

import (
	"errors"
	"io"
	"testing"
)

func TestErrorf(t *testing.T) {
	kind := errors.New("pkg: kind")
	err := Errorf(kind, "reading %s: %w", "x", io.ErrUnexpectedEOF)
	if !errors.Is(err, kind) || !errors.Is(err, io.ErrUnexpectedEOF) || err.Error() != "reading x: unexpected EOF" {
		t.Errorf("Errorf = %v (is kind %v, is EOF %v)", err, errors.Is(err, kind), errors.Is(err, io.ErrUnexpectedEOF))
	}
	if errors.Is(err, errors.New("pkg: kind")) {
		t.Error("matched another sentinel with the same text")
	}
}

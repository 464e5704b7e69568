package export

import (
	"testing"

	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// The fake layers and helpers of overlay's own tests, over internal/fakelayer.

type (
	fakeLayer = fakelayer.Layer
	members   = []tartest.Member
)

func newFakeLayer(ms ...tartest.Member) *fakeLayer { return fakelayer.New(ms...) }

func file(name, body string) tartest.Member { return tartest.File(name, body) }
func dir(name string) tartest.Member        { return tartest.Dir(name) }

// layersOf builds one fake layer per member list, bottom first.
func layersOf(stacks ...[]tartest.Member) []overlay.Layer {
	out := make([]overlay.Layer, len(stacks))
	for i, ms := range stacks {
		out[i] = newFakeLayer(ms...)
	}
	return out
}

func mustNew(t *testing.T, stacks ...members) *overlay.View {
	t.Helper()
	v, err := overlay.New(layersOf(stacks...), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dumpLayers describes layers for a failure message.
func dumpLayers(layers []overlay.Layer) string { return fakelayer.Dump(layers) }

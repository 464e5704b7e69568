package overlay

import (
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
)

// The tests' layers are internal/fakelayer's, which the tests of the packages over the view use too.

type fakeLayer = fakelayer.Layer

var _ Layer = (*fakeLayer)(nil)

func newFakeLayer(ms ...tartest.Member) *fakeLayer { return fakelayer.New(ms...) }

// layersOf builds one fake layer per member list, bottom first.
func layersOf(stacks ...[]tartest.Member) []Layer {
	out := make([]Layer, len(stacks))
	for i, ms := range stacks {
		out[i] = newFakeLayer(ms...)
	}
	return out
}

package layerdiff

import (
	"strings"

	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// The fake layers and helpers of overlay's own tests, over internal/fakelayer.

// layersOf builds one fake layer per member list, bottom first.
func layersOf(stacks ...[]tartest.Member) []overlay.Layer {
	out := make([]overlay.Layer, len(stacks))
	for i, ms := range stacks {
		out[i] = fakelayer.New(ms...)
	}
	return out
}

// lookupPath looks up a slash-separated path from the root.
func lookupPath(v *overlay.View, p string) (overlay.Attr, error) {
	a, err := v.Attr(overlay.Root)
	for _, c := range strings.Split(p, "/") {
		if err != nil {
			break
		}
		a, err = v.Lookup(a.Node, c)
	}
	return a, err
}

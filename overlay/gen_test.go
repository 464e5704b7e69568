package overlay

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/imgfs/imgfs/internal/fakelayer"
)

func TestRandomStacksMatchOracle(t *testing.T) {
	t.Parallel()
	n := 3000
	if testing.Short() {
		n = 300
	}
	for seed := range n {
		stacks := fakelayer.GenStack(rand.New(rand.NewPCG(uint64(seed), 7)))
		layers := layersOf(stacks...)
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) { checkOracle(t, layers) })
		if !ok {
			t.Logf("members: %+v", stacks)
			break
		}
	}
}

func FuzzView(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 5, 0, 1, 0, 1, 7, 0, 2, 1, 2, 5, 1, 0, 0, 1, 1, 9, 0, 3})
	f.Add([]byte("\x02\x04\x05\x01\x00\x01\x06\x00\x0d\x01\x01\x00\x0b\x01\x0e\x01\x0a\x00\x01\x01"))
	for seed := range 8 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		b := make([]byte, 64)
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkOracle(t, layersOf(fakelayer.GenStack(fakelayer.NewByteChooser(data))...))
	})
}

package overlay

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// chooser supplies the generator's decisions.
type chooser interface{ intn(n int) int }

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

// byteChooser takes decisions from fuzz bytes; once they run out every decision is 0.
type byteChooser struct {
	b []byte
	i int
}

func (c *byteChooser) intn(n int) int {
	if c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	return v % n
}

var genNames = []string{"a", "b", "c"}

func genPath(c chooser, min int) string {
	depth := min + c.intn(4-min)
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = genNames[c.intn(len(genNames))]
	}
	return strings.Join(parts, "/")
}

func genJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// genStack makes a random layer stack with few names, so that paths collide across layers: files, dirs,
// symlinks, devices, hard links (also into AUFS .wh..wh.plnk), whiteouts of both styles, opaque markers
// of both styles, root members, eStargz metadata and type changes.
func genStack(c chooser) [][]tartest.Member {
	stacks := make([][]tartest.Member, 1+c.intn(4))
	for li := range stacks {
		var ms []tartest.Member
		for n := c.intn(10); n > 0; n-- {
			p := genPath(c, 1)
			switch c.intn(17) {
			case 0, 1:
				m := tartest.File(p, fmt.Sprintf("L%d:%s", li, p))
				m.Mode = []int64{0o644, 0o600, 0o4755}[c.intn(3)]
				ms = append(ms, m)
			case 2, 3:
				m := tartest.Dir(p)
				m.Mode = []int64{0o755, 0o700, 0o1777}[c.intn(3)]
				m.UID = c.intn(3)
				ms = append(ms, m)
			case 4:
				ms = append(ms, tartest.Symlink(p, []string{"a", "../b", "/c/d"}[c.intn(3)]))
			case 5, 6:
				target := genPath(c, 1)
				if c.intn(8) == 0 {
					target = []string{".wh..wh.dev", ".wh..wh.plnk/a"}[c.intn(2)]
				}
				ms = append(ms, tartest.Hardlink(p, target))
			case 7, 8:
				dir := genPath(c, 0)
				ms = append(ms, tartest.Whiteout(dir, genNames[c.intn(len(genNames))]))
			case 9:
				if dir := genPath(c, 0); dir != "" {
					ms = append(ms, tartest.Opaque(dir))
				} else {
					ms = append(ms, tartest.File(".wh..wh..opq", ""))
				}
			case 10:
				ms = append(ms, tartest.Member{Name: p, Type: tar.TypeChar})
			case 11:
				m := tartest.Dir(p)
				m.Xattrs = map[string]string{"trusted.overlay.opaque": "y"}
				ms = append(ms, m)
			case 12:
				m := tartest.File(p, "x")
				m.Xattrs = map[string]string{"user.k": p, "trusted.overlay.origin": "z"}
				ms = append(ms, m)
			case 13:
				name := genNames[c.intn(len(genNames))]
				ms = append(ms, tartest.File(".wh..wh.plnk/"+name, "plnk"+name),
					tartest.Hardlink(p, ".wh..wh.plnk/"+name))
			case 14:
				m := tartest.Dir(".")
				m.Mode = 0o700
				if c.intn(2) == 0 {
					m.Xattrs = map[string]string{"trusted.overlay.opaque": "y", "user.root": "r"}
				}
				ms = append(ms, m)
			case 15:
				ms = append(ms, tartest.File("stargz.index.json", "{}"), tartest.File(".prefetch.landmark", "l"))
			case 16:
				switch c.intn(4) {
				case 0:
					ms = append(ms, tartest.Member{Name: p, Type: tar.TypeChar, Devmajor: 1, Devminor: 3})
				case 1:
					ms = append(ms, tartest.Member{Name: p, Type: tar.TypeFifo})
				case 2:
					ms = append(ms, tartest.Whiteout(genPath(c, 0), ".wh.plnk"))
				default: // an AUFS name is metadata even when it looks like an overlay whiteout
					ms = append(ms, tartest.Member{Name: ".wh..wh.dev", Type: tar.TypeChar},
						tartest.Hardlink(p, ".wh..wh.dev"))
				}
			}
		}
		stacks[li] = ms
	}
	return stacks
}

func TestRandomStacksMatchOracle(t *testing.T) {
	t.Parallel()
	n := 3000
	if testing.Short() {
		n = 300
	}
	for seed := range n {
		stacks := genStack(randChooser{rand.New(rand.NewPCG(uint64(seed), 7))})
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
		checkOracle(t, layersOf(genStack(&byteChooser{b: data})...))
	})
}

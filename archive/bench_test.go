package archive

import (
	"context"
	"os"
	"testing"
)

// benchArchives are a legacy docker-save tar and an OCI archive of one three-layer image each.
func benchArchives(b *testing.B) map[string]string {
	l := threeLayers(b, "")
	ds := &dockerSave{}
	ds.image(b, styleSkopeo, []string{"foo:1"}, linuxAMD64, l)
	ds.finish(b)
	o := newOCI()
	o.finish(b, o.image(b, linuxAMD64, l))
	return map[string]string{
		"docker-archive": writeTemp(b, "d.tar", ds.tarBytes(b, tarOpts{})),
		"oci-archive":    writeTemp(b, "o.tar", o.tarBytes(b, tarOpts{})),
	}
}

// BenchmarkOpenImage measures Open plus Image: the header scan, the JSON documents and their hashes.
func BenchmarkOpenImage(b *testing.B) {
	ctx := context.Background()
	for name, p := range benchArchives(b) {
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(st.Size())
			b.ReportAllocs()
			for b.Loop() {
				a, err := Open(ctx, p, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Image(ctx, "", nil); err != nil {
					b.Fatal(err)
				}
				a.Close()
			}
		})
	}
}

// BenchmarkOpenCorpus opens a real 418 MiB docker-archive (header scan only, no layer data read).
func BenchmarkOpenCorpus(b *testing.B) {
	p := corpusDir + "/podman-docker-archive-multi.tar"
	if _, err := os.Stat(p); err != nil {
		b.Skip("no corpus")
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := Open(ctx, p, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Image(ctx, "l2", nil); err != nil {
			b.Fatal(err)
		}
		a.Close()
	}
}

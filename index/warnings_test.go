package index

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// warningTar is a layer whose members the builder drops or alters: an escape through "..", a hardlink
// to a directory, an unknown typeflag, and n more escapes.
func warningTar(t *testing.T, n int) []byte {
	t.Helper()
	ms := []tartest.Member{tartest.Dir("d"), tartest.File("../escape", "x"), tartest.Hardlink("h", "d")}
	for i := range n {
		ms = append(ms, tartest.File(fmt.Sprintf("../more-%d", i), ""))
	}
	body, err := tartest.Build(ms...)
	if err != nil {
		t.Fatal(err)
	}
	body = body[:len(body)-1024] // drop the end marker, append a 'Q' member
	return tartest.Concat(body, tartest.RawHeader("q", 'Q', 3, ""), tartest.Pad([]byte("abc")), tartest.End())
}

// TestWarningsStoredWithTable checks that the warnings of a build are logged on every open of the layer,
// from the cache too, and are kept in the table (bounded, with the total count).
func TestWarningsStoredWithTable(t *testing.T) {
	t.Parallel()
	data := warningTar(t, 0)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	for _, tc := range []struct {
		name string
		blob []byte
	}{{"plain", data}, {"gzip", gz.Bytes()}} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			for round := range 2 { // built, then from the cache
				var logs bytes.Buffer
				opts := Options{CacheDir: cache, DiffID: sha(data), Digest: sha(tc.blob),
					Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
				l, err := Open(context.Background(), fileBlob(t, tc.blob, 0), opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(tableFiles(t, cache)) != 1 {
					t.Fatalf("round %d: tables %v", round, tableFiles(t, cache))
				}
				for _, want := range []string{`msg="index: dropping member outside the root"`, `name=../escape`,
					`msg="index: dropping hardlink to a directory" layer=` + string(sha(data)) + ` name=h target=d`,
					`msg="index: unknown tar typeflag, member kept as a regular file"`, `typeflag='Q'`} {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("round %d: log lacks %s:\n%s", round, want, logs.String())
					}
				}
				ws, n := l.Warnings()
				if n != 3 || len(ws) != 3 || ws[2].String() != `index: unknown tar typeflag, member kept as a regular file name="q" typeflag="'Q'"` {
					t.Errorf("round %d: warnings %q, %d", round, ws, n)
				}
				if id, ok := l.Lookup(0, "q"); !ok || l.Entry(id).Type != TypeRegular || l.Entry(id).Size != 3 {
					t.Errorf("round %d: q is not a 3-byte regular file", round)
				}
				l.Close()
			}
		})
	}
}

// TestWarningsBounded checks that only the first maxWarnings warnings are stored, with the count of all.
func TestWarningsBounded(t *testing.T) {
	t.Parallel()
	data := warningTar(t, 100)
	cache := t.TempDir()
	for round := range 2 {
		var logs bytes.Buffer
		l, err := Open(context.Background(), fileBlob(t, data, 0), Options{CacheDir: cache, DiffID: sha(data),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ws, n := l.Warnings()
		if len(ws) != maxWarnings || n != 103 {
			t.Errorf("round %d: %d warnings stored, %d in all; want %d, 103", round, len(ws), n, maxWarnings)
		}
		if got := strings.Count(logs.String(), "level=WARN"); got != maxWarnings+1 ||
			!strings.Contains(logs.String(), "not_logged=53") {
			t.Errorf("round %d: %d warning lines:\n%s", round, got, logs.String())
		}
		l.Close()
	}
}

// TestWarningsLinuxLimits checks the index-time warnings of names over NAME_MAX and symlink targets of
// PATH_MAX bytes or more; the members stay in the table.
func TestWarningsLinuxLimits(t *testing.T) {
	t.Parallel()
	n255, n256, n64k := strings.Repeat("a", 255), strings.Repeat("b", 256), strings.Repeat("c", 65535)
	data := tartest.Tar(t,
		tartest.File(n255, ""), tartest.File(n256, ""), tartest.File(n64k, ""),
		tartest.File("d/"+n256+"/f", ""), tartest.File(".wh."+n255, ""),
		tartest.Symlink("s4095", strings.Repeat("t", 4095)),
		tartest.Symlink("s4096", strings.Repeat("u", 4096)),
		tartest.Symlink("s5000", strings.Repeat("v", 5000)))
	l, err := Open(context.Background(), fileBlob(t, data, 0), Options{CacheDir: t.TempDir(), DiffID: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ws, n := l.Warnings()
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%s %s=%s", w.Msg, w.Attrs[2], w.Attrs[3]))
	}
	const nm = "index: name longer than 255 bytes (NAME_MAX): left out of the mount and the export name_bytes="
	const sl = "index: symlink target of 4096 bytes or more (PATH_MAX): readlink gives ENAMETOOLONG target_bytes="
	want := []string{nm + "256", nm + "65535", nm + "256", sl + "4096", sl + "5000"}
	if n != int64(len(want)) || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings (%d):\n%s\nwant\n%s", n, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(ws) > 1 && !strings.HasSuffix(ws[1].Attrs[1], "... (65535 bytes)") {
		t.Errorf("the 64 KiB name is not clipped in the warning: %.100q", ws[1].Attrs[1])
	}
	for _, p := range []string{n256, n64k, "d/" + n256 + "/f", "s5000"} {
		id := ID(0)
		for _, c := range strings.Split(p, "/") {
			var ok bool
			if id, ok = l.Lookup(id, c); !ok {
				t.Errorf("%.20s... is not in the table", p)
				break
			}
		}
	}
}

package compression

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "stream", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tarHeader := make([]byte, 512)
	copy(tarHeader, "etc/passwd")
	cases := []struct {
		name        string
		data        []byte
		want        Format
		unsupported string // format named in the error
	}{
		{"gzip", fixture("fname.txt.gz"), Gzip, ""},
		{"zstd", fixture("single.txt.zst"), Zstd, ""},
		{"zstd skippable first", skippable("toc"), Zstd, ""},
		{"bzip2", fixture("plain.txt.bz2"), None, "bzip2"},
		{"bzip2 empty", []byte("BZh9\x17\x72\x45\x38\x50\x90\x00\x00\x00\x00"), None, "bzip2"},
		{"xz", fixture("plain.txt.xz"), None, "xz"},
		{"lz4", fixture("plain.txt.lz4"), None, "lz4"},
		{"compress", []byte{0x1f, 0x9d, 0x90, 'a'}, None, "compress"},
		{"tar", tarHeader, None, ""},
		{"text starting BZh", []byte("BZh9 is not bzip2 at all"), None, ""},
		{"gzip magic, other method", []byte{0x1f, 0x8b, 0x07, 0, 0, 0, 0, 0, 0, 0}, None, ""},
		{"short gzip", []byte{0x1f, 0x8b, 0x08}, Gzip, ""},
		{"two bytes", []byte{0x1f, 0x8b}, None, ""},
		{"empty", nil, None, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// At an offset, with other bytes before.
			r := bytes.NewReader(append([]byte("junk"), tc.data...))
			got, err := Detect(r, 4)
			if got != tc.want {
				t.Errorf("Detect = %v, want %v", got, tc.want)
			}
			switch {
			case tc.unsupported == "" && err != nil:
				t.Errorf("err = %v", err)
			case tc.unsupported != "" && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.unsupported)):
				t.Errorf("err = %v, want ErrUnsupported naming %s", err, tc.unsupported)
			}
		})
	}
}

func TestFormatString(t *testing.T) {
	t.Parallel()
	for c, want := range map[Format]string{None: "none", Gzip: "gzip", Zstd: "zstd", 9: "compression(9)"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", c, c.String(), want)
		}
	}
}

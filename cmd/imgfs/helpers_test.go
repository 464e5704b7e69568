package main

import (
	"reflect"
	"testing"

	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    *ispec.Platform
		wantErr bool
	}{
		{"", nil, false},
		{"linux/amd64", &ispec.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"linux/arm64/v8", &ispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false},
		{"linux", nil, true},
		{"linux/", nil, true},
		{"/amd64", nil, true},
		{"a/b/c/d", nil, true},
	} {
		got, err := parsePlatform(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parsePlatform(%q): err %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if (got == nil) != (tc.want == nil) || got != nil && !reflect.DeepEqual(*got, *tc.want) {
			t.Errorf("parsePlatform(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestHumanBytesAndCommas(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(in); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1009092: "1,009,092", -5: "-5"} {
		if got := commas(in); got != want {
			t.Errorf("commas(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestSanitizeFsName(t *testing.T) {
	t.Parallel()
	if got := sanitizeFsName("/a b,c\\d"); got != "/a_b_c_d" {
		t.Errorf("sanitizeFsName = %q", got)
	}
}

func TestShortAndTrunc(t *testing.T) {
	t.Parallel()
	if got := short("sha256:0123456789abcdef0123"); got != "sha256:0123456789ab" {
		t.Errorf("short = %q", got)
	}
	if got := trunc("a\nbcdef", 4); got != "a b…" {
		t.Errorf("trunc = %q", got)
	}
}

package archive

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostPlatform returns the platform images are selected for by default: runtime.GOOS and GOARCH, with
// the variant for arm64 ("v8") and 32-bit arm (from /proc/cpuinfo, "v7" when unknown).
func HostPlatform() ispec.Platform {
	p := ispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = armVariant()
	}
	return p
}

// armVariant reads the CPU architecture level of a 32-bit arm host.
func armVariant() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "v7"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "CPU architecture" {
			switch v = strings.TrimSpace(v); v {
			case "5", "6", "7", "8":
				return "v" + v
			}
			if strings.HasPrefix(v, "AArch64") {
				return "v8"
			}
		}
	}
	return "v7"
}

// ParsePlatform parses "os/arch[/variant]" (as docker's --platform takes it). An os alone is an error.
func ParsePlatform(s string) (ispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ispec.Platform{}, errorf(ErrPlatform, "platform %q: want os/arch[/variant]", clip(s))
	}
	p := ispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// FormatPlatform writes a platform as "os/arch[/variant]".
func FormatPlatform(p ispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normalizePlatform spells a platform the way images usually do: lower case, amd64 for x86_64, arm64
// with variant v8, 32-bit arm with a "vN" variant (v7 by default).
func normalizePlatform(p ispec.Platform) ispec.Platform {
	os, arch, variant := strings.ToLower(p.OS), strings.ToLower(p.Architecture), strings.ToLower(p.Variant)
	switch arch {
	case "x86_64", "x86-64":
		arch = "amd64"
	case "i386", "i486", "i586", "i686":
		arch = "386"
	case "aarch64":
		arch = "arm64"
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	}
	switch arch {
	case "amd64":
		if variant == "v1" {
			variant = ""
		}
	case "arm64":
		if variant == "" || variant == "8" {
			variant = "v8"
		}
	case "arm":
		switch variant {
		case "":
			variant = "v7"
		case "5", "6", "7", "8":
			variant = "v" + variant
		}
	}
	return ispec.Platform{OS: os, Architecture: arch, Variant: variant}
}

// platformScore says how well have serves want: 0 not at all, higher is better. os and architecture must
// be equal; an equal variant is best; when want names no variant any variant will do; a 32-bit arm host
// also takes older arm variants, the newest first.
func platformScore(want, have ispec.Platform) int {
	w, h := normalizePlatform(want), normalizePlatform(have)
	if w.OS != h.OS || w.Architecture != h.Architecture {
		return 0
	}
	if w.Variant == h.Variant {
		return 100
	}
	if want.Variant == "" {
		return 50
	}
	if w.Architecture == "arm" {
		wv, hv := armLevel(w.Variant), armLevel(h.Variant)
		if hv > 0 && hv < wv {
			return 10 + hv
		}
	}
	return 0
}

// armLevel is N for an arm variant "vN" (5..8), else 0.
func armLevel(v string) int {
	if len(v) == 2 && v[0] == 'v' && v[1] >= '5' && v[1] <= '8' {
		return int(v[1] - '0')
	}
	return 0
}

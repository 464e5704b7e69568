package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// mountHelperName is the name mount(8) runs for `mount -t fuse.imgfs` and fstab lines of that type:
// /sbin/mount.fuse.imgfs SOURCE MOUNTPOINT [-n] [-s] [-f] [-v] [-o OPTIONS].
const mountHelperName = "mount.fuse.imgfs"

// Options of the helper's -o that are imgfs mount flags with a value, and without one.
var (
	helperValueFlags = []string{"upper", "image", "platform", "cache-dir", "log-file", "cache-max-size", "layers-name", "custody"}
	helperBoolFlags  = []string{"evidence", "layers", "no-verify", "allow-other"}
	// What mount(8) and systemd handle themselves, meaningless to the file system.
	helperDropped = []string{"defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail", "_netdev", "rw", "comment"}
)

// mountHelperArgs turns the arguments mount(8) gives its helper (without argv[0]) into imgfs's.
func mountHelperArgs(args []string) ([]string, error) {
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o":
			if i+1 == len(args) {
				return nil, fmt.Errorf("%s: -o without options", mountHelperName)
			}
			i++
			opts = append(opts, strings.Split(args[i], ",")...)
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, strings.Split(a[2:], ",")...)
		case a == "-n", a == "-s", a == "-v": // no mtab, sloppy, verbose: nothing to do
		case a == "-f":
			return nil, fmt.Errorf("%s: -f (fake mount) is not supported", mountHelperName)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			return nil, fmt.Errorf("%s: unknown option %s", mountHelperName, a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("%s: want SOURCE MOUNTPOINT [-o OPTIONS], got %d argument(s)", mountHelperName, len(pos))
	}
	out := []string{"imgfs", "mount", "--quiet"}
	var fuseOpts []string
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		name := strings.ReplaceAll(k, "_", "-")
		switch {
		case o == "":
		case slices.Contains(helperValueFlags, name):
			if !hasValue || v == "" {
				return nil, fmt.Errorf("%s: option %s wants a value (%s=...)", mountHelperName, k, k)
			}
			out = append(out, "--"+name, v)
		case slices.Contains(helperBoolFlags, name) && !hasValue:
			out = append(out, "--"+name)
		case slices.Contains(helperDropped, k), strings.HasPrefix(k, "x-"):
		default:
			fuseOpts = append(fuseOpts, o) // ro, nosuid, nodev, noexec, default_permissions, ...
		}
	}
	if len(fuseOpts) > 0 {
		out = append(out, "-o", strings.Join(fuseOpts, ","))
	}
	src, err := filepath.Abs(pos[0]) // the daemon outlives mount(8)'s working directory
	if err != nil {
		return nil, err
	}
	return append(out, src, pos[1]), nil
}

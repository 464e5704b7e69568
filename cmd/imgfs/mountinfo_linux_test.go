package main

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{`51 27 0:43 / /tmp/ms/m1 ro,nosuid,nodev,relatime - fuse.imgfs imgfs:/tmp/ms/sample.tar ro,user_id=0`,
			mountEntry{"/tmp/ms/m1", "fuse.imgfs", "imgfs:/tmp/ms/sample.tar"}, true},
		{`36 35 98:0 / /mnt/with\040space\134x rw shared:1 master:2 - tmpfs tmpfs rw`,
			mountEntry{`/mnt/with space\x`, "tmpfs", "tmpfs"}, true},
		{`36 35 98:0 / /mnt rw - ext4`, mountEntry{}, false},
		{`garbage`, mountEntry{}, false},
	} {
		got, ok := parseMountinfo(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
	if !(mountEntry{fstype: "fuse", source: "imgfs:/x.tar"}).isImgfs() || (mountEntry{fstype: "fuse.sshfs", source: "imgfs:x"}).isImgfs() {
		t.Error("isImgfs")
	}
}

func TestMountTargetVerdict(t *testing.T) {
	t.Parallel()
	imgfs := mountEntry{"/m", "fuse.imgfs", "imgfs:/a.tar"}
	sshfs := mountEntry{"/m", "fuse.sshfs", "host:/"}
	tmpfs := mountEntry{"/m", "tmpfs", "tmpfs"}
	for _, c := range []struct {
		name          string
		e             mountEntry
		mounted, dead bool
		cleanup       bool
		msg           string // "" when no error
	}{
		{"plain directory", mountEntry{}, false, false, false, ""},
		{"inside a dead mount", mountEntry{}, false, true, false, "inside a dead FUSE mount"},
		{"dead imgfs", imgfs, true, true, true, ""},
		{"dead other FUSE", sshfs, true, true, false, "imgfs leaves it alone: 'umount -l /m'"},
		{"live imgfs", imgfs, true, false, false, "already an imgfs mount (of /a.tar); 'imgfs unmount m'"},
		{"tmpfs", tmpfs, true, false, false, "already a mount point (tmpfs tmpfs)"},
	} {
		cleanup, err := mountTargetVerdict("m", "/m", c.e, c.mounted, c.dead)
		if cleanup != c.cleanup || (err == nil) != (c.msg == "") || err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: cleanup %v, err %v; want %v, %q", c.name, cleanup, err, c.cleanup, c.msg)
		}
	}
}

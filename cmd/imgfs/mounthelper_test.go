package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMountHelperArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string // "" when refused; err then holds the message
		err  string
	}{
		{"/a.tar /mnt", "imgfs mount --quiet /a.tar /mnt", ""},
		{"/a.tar /mnt -o ro,upper=/var/app", "imgfs mount --quiet --upper /var/app -o ro /a.tar /mnt", ""},
		{"/a.tar /mnt -n -s -v -o defaults,noauto,nofail,_netdev,x-systemd.automount,rw,user", "imgfs mount --quiet /a.tar /mnt", ""},
		{"/a.tar /mnt -oimage=app:1,platform=linux/arm64,cache_dir=/c,cache-max-size=1G,evidence,layers,allow_other,nosuid,nodev",
			"imgfs mount --quiet --image app:1 --platform linux/arm64 --cache-dir /c --cache-max-size 1G --evidence --layers --allow-other -o nosuid,nodev /a.tar /mnt", ""},
		{"-o ro /a.tar /mnt", "imgfs mount --quiet -o ro /a.tar /mnt", ""},
		{"/a.tar /mnt -o upper", "", "option upper wants a value"},
		{"/a.tar /mnt -o upper=", "", "option upper wants a value"},
		{"/a.tar /mnt -o", "", "-o without options"},
		{"/a.tar", "", "want SOURCE MOUNTPOINT"},
		{"/a.tar /mnt extra", "", "want SOURCE MOUNTPOINT"},
		{"/a.tar /mnt -f", "", "fake mount"},
		{"/a.tar /mnt --bogus", "", "unknown option --bogus"},
	} {
		got, err := mountHelperArgs(strings.Fields(tc.args))
		if tc.want != "" {
			if err != nil || !slices.Equal(got, strings.Fields(tc.want)) {
				t.Errorf("%s: got %q, %v; want %q", tc.args, got, err, tc.want)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %q, %v; want an error with %q", tc.args, got, err, tc.err)
		}
	}
}

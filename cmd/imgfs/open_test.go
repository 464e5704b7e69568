package main

import (
	"slices"
	"testing"

	"github.com/imgfs/imgfs/archive"
)

func TestIndexOrder(t *testing.T) {
	for _, tc := range []struct {
		sizes []int64
		want  []int
	}{
		{nil, []int{}},
		{[]int64{5}, []int{0}},
		{[]int64{10, 20, 30}, []int{2, 1, 0}}, // a big top layer goes first
		{[]int64{30, 1, 1, 200, 1}, []int{3, 0, 1, 2, 4}},
		{[]int64{7, 7, 7}, []int{0, 1, 2}}, // ties keep image order
	} {
		layers := make([]archive.Layer, len(tc.sizes))
		for i, s := range tc.sizes {
			layers[i].Size = s
		}
		if got := indexOrder(layers); !slices.Equal(got, tc.want) {
			t.Errorf("indexOrder(%v) = %v, want %v", tc.sizes, got, tc.want)
		}
	}
}

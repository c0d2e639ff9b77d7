package postgres

import (
	"slices"
	"testing"
)

func TestReadCounts(t *testing.T) {
	t.Parallel()
	dst := make([]int64, 3)
	if err := readCounts(dst, []byte("{0,12,9000000000}")); err != nil || !slices.Equal(dst, []int64{0, 12, 9000000000}) {
		t.Errorf("readCounts = %v, %v; want [0 12 9000000000]", dst, err)
	}
	for _, bad := range []string{"", "{}", "{1,2}", "{1,2,3,4}", "{1,2,3", "1,2,3}", "{1,,3}", "{1,2,}", "{1}2,3}", "{1,-2,3}", "{1,2,3}}"} {
		if err := readCounts(dst, []byte(bad)); err == nil {
			t.Errorf("readCounts(%q) = %v, want an error", bad, dst)
		}
	}
}

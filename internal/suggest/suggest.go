// Package suggest finds the closest valid name to a misspelled one, for the
// "did you mean" of validation messages in routine files and expressions.
package suggest

import "strings"

// DidYouMean returns `; did you mean "x"?` for the candidate closest to
// name, or "" when none is close enough to be a typo.
func DidYouMean(name string, candidates []string) string {
	if c := Closest(name, candidates); c != "" {
		return `; did you mean "` + c + `"?`
	}
	return ""
}

// Closest returns the candidate closest to name when it is close enough to
// be a typo: at most two edits away (one for names of three letters or
// less), or sharing a prefix of four letters; "" otherwise.
func Closest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := distance(strings.ToLower(name), strings.ToLower(c))
		if d >= len(c) || d > max(1, min(2, len(name)/2)) {
			d = 3
		}
		if commonPrefix(strings.ToLower(name), strings.ToLower(c)) >= 4 {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Typo returns the first candidate that name is one slip of the keyboard
// away from (a letter added, dropped or changed, or two neighbours
// swapped), or "". It is stricter than Closest, for names such as
// AWS_ACCESS_KEY and AWS_SECRET_KEY that share a prefix yet name
// different things.
func Typo(name string, candidates []string) string {
	for _, c := range candidates {
		if distance(name, c) == 1 {
			return c
		}
	}
	return ""
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// distance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours count one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

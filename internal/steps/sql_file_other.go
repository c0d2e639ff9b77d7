//go:build !linux

package steps

// checkSQLFile checks the file rel under realRoot by name: only Linux has
// openat2 (see checkSQLFileByName).
func checkSQLFile(root sqlRoot, realRoot, rel string) error {
	return checkSQLFileByName(root, realRoot, rel)
}

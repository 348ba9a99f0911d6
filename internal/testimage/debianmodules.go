package testimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// debianModuleDir is where the host keeps its kernel modules.
const debianModuleDir = "/lib/modules"

// debianCopyModules copies modules and every module they depend on
// from the host's modules of release kver into the image, with the files
// depmod needs to index them. Modules built into the kernel are skipped;
// a name that is neither a module nor built in is an error.
func debianCopyModules(rootfs, kver string, modules []string) error {
	src := filepath.Join(debianModuleDir, kver)
	deps, err := debianReadModulesDep(filepath.Join(src, "modules.dep"))
	if err != nil {
		return err
	}
	builtin, err := debianReadBuiltin(filepath.Join(src, "modules.builtin"))
	if err != nil {
		return err
	}
	byName := map[string]string{}
	for path := range deps {
		byName[debianModuleName(path)] = path
	}
	want := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if want[path] {
			return
		}
		want[path] = true
		for _, d := range deps[path] {
			visit(d)
		}
	}
	for _, name := range modules {
		n := strings.ReplaceAll(name, "-", "_")
		if path, ok := byName[n]; ok {
			visit(path)
			continue
		}
		if !builtin[n] {
			return fmt.Errorf("kernel %s has no module %s", kver, name)
		}
	}
	// Merged /usr: /lib is a link to usr/lib in the image.
	dst := filepath.Join(rootfs, "usr/lib/modules", kver)
	for path := range want {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, path)), 0o755); err != nil {
			return err
		}
		if err := debianCopyFile(filepath.Join(src, path), filepath.Join(dst, path)); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := debianCopyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// debianReadModulesDep reads modules.dep: "path.ko: dep.ko dep.ko".
func debianReadModulesDep(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return deps, nil
}

// debianReadBuiltin reads the names of the modules built into the kernel.
func debianReadBuiltin(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	out := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		out[debianModuleName(l)] = true
	}
	return out, nil
}

// debianModuleName turns kernel/fs/isofs/isofs.ko.xz into isofs, with
// dashes as underscores as the kernel spells module names.
func debianModuleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

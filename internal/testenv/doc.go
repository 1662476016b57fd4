// Package testenv starts the real things berth's integration tests run
// against: a private containerd daemon, a busybox image built from the host's
// busybox-static, a loopback image registry and a private CNI network.
//
// Nothing here touches a system containerd: each daemon has its own root,
// state, socket and configuration under a temporary directory, and each test
// gets its own containerd namespace and its own bridge and subnet. Missing
// tools (containerd, runc, CNI plugins, busybox, root) are errors, never
// skips: a machine that cannot run the integration tests fails them loudly.
//
// Typical use in a package's tests:
//
//	var ctrd *testenv.Containerd
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &ctrd)) }
//
//	func TestX(t *testing.T) {
//		ns := testenv.Namespace(t, ctrd)              // own containerd namespace, cleaned up
//		testenv.BusyboxImage(t, ctrd, ns, "example.local/busybox:1")
//		net := testenv.Network(t)                     // own bridge and subnet
//		...
//	}
//
// A test that wants a daemon of its own calls NewContainerd(t) instead.
// Registry and RegistryWithAuth (htpasswd) start Debian's docker-registry
// on loopback; DockerArchive and BusyboxArchiveConfig make the other image
// archive format and images with more configuration (STOPSIGNAL, user).
// Main also serves as the log daemon when a runtime starts the test
// binary as one (runtimes in tests use it as their log daemon).
package testenv

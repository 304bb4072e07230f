# The Debian package of migrated, built by scripts/package.sh with CPack:
# the binaries in /usr/bin, the unit, /etc/migrated/migrated.yaml as a
# conffile, man pages, bash completion. It depends on what the daemon runs
# (CRIU, runc, iptables, iproute2, nsenter, busybox's arping) and on the
# shared libraries dpkg-shlibdeps finds, nothing of the build.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME migrated)
set(CPACK_PACKAGE_VENDOR migrated)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "migrated maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "live migration of containers between edge hosts")
set(CPACK_PACKAGE_DESCRIPTION "A daemon per host and its controller move running containers
(runc, Docker) between hosts with their memory, files and network
connections: cold, pre-copy, post-copy and hybrid migration with CRIU,
over mutually authenticated TLS, rolled back whenever a step fails.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # migrated_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "criu (>= 4.1), runc, iptables, iproute2, util-linux, busybox-static | busybox")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "containernetworking-plugins, openssl")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "docker.io, prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_CURRENT_LIST_DIR}/conffiles;${CMAKE_CURRENT_LIST_DIR}/postinst;${CMAKE_CURRENT_LIST_DIR}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

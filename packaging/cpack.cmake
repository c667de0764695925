# Debian package for Cachalot: `cpack -G DEB` in a build directory.
# Included at the end of the root CMakeLists.txt, after the cachalot target and
# its install(TARGETS ... DESTINATION bin) exist.
#
# Layout of the package (CPACK_PACKAGING_INSTALL_PREFIX is /usr):
#   /usr/bin/cachalot                     install(TARGETS) in the root CMakeLists
#   /lib/systemd/system/cachalot.service  Debian 12 still ships units under /lib
#   /etc/cachalot/cachalot.yaml           a conffile (see packaging/conffiles)
#   /usr/share/doc/cachalot/README.md
#   /usr/share/doc/cachalot/grafana/cachalot.json  the Grafana dashboard
# The absolute destinations below also apply to a plain `cmake --install`,
# which then writes to /etc and /lib like the package would.

install(FILES ${CMAKE_SOURCE_DIR}/systemd/cachalot.service
  DESTINATION /lib/systemd/system
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# The reference config listens on 127.0.0.1:8080 for 127.0.0.1:9000, so a fresh
# install starts without exposing anything.
install(FILES ${CMAKE_SOURCE_DIR}/config/cachalot.yaml
  DESTINATION /etc/cachalot
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/README.md
  DESTINATION share/doc/cachalot
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
  OPTIONAL)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/grafana/cachalot.json
  DESTINATION share/doc/cachalot/grafana
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cachalot)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Cachalot")
set(CPACK_PACKAGE_CONTACT "Cachalot maintainers <cachalot@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "caching HTTP reverse proxy")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Build trees often have a restrictive umask; directories in the package must be 0755.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_NAME cachalot)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # cachalot_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description; CPack puts CPACK_PACKAGE_DESCRIPTION_SUMMARY in
# front as the synopsis and indents these lines as debian/control wants.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"Cachalot sits in front of one HTTP origin and caches its responses following
RFC 9111: freshness, validation, Vary, stale-while-revalidate and
stale-if-error, with request coalescing, purging by URL or tag and an admin
listener for health checks and metrics. It runs as the systemd service
cachalot.service under its own system user.")

# Depends: dpkg-shlibdeps (dpkg-dev) reads the binary's NEEDED libraries and
# maps them to packages with versions. Without it, name them by hand; keep this
# list in step with the find_package() calls and the Dockerfile's runtime stage.
# adduser is what postinst calls; it is not a library, so it is always listed.
find_program(CACHALOT_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(CACHALOT_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
else()
  message(STATUS "dpkg-shlibdeps not found (package dpkg-dev): the .deb gets a fixed Depends list")
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "adduser, libc6, libstdc++6, libgcc-s1, libyaml-cpp0.7, libspdlog1.10, libfmt9, libssl3, libxxhash0, libre2-9, libhiredis0.14")
  if(SYSTEMD_FOUND)
    string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libsystemd0")
  endif()
endif()

# CPack, unlike debhelper's dh_installdeb, does not mark files under /etc as
# conffiles by itself: the list is shipped explicitly. Without it an upgrade
# would silently overwrite the operator's edited config.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/conffiles
  ${CMAKE_CURRENT_LIST_DIR}/postinst
  ${CMAKE_CURRENT_LIST_DIR}/prerm
  ${CMAKE_CURRENT_LIST_DIR}/postrm)
# 0644 for conffiles, 0755 for the maintainer scripts, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)

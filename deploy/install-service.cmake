# Runs at install time (cmake --install, cpack): writes the systemd unit and installs the sample
# config for the prefix chosen then, so `--prefix` and DESTDIR both work. Expects MJPEG_DEPLOY_DIR,
# MJPEG_BINARY_DIR and MJPEG_BINDIR, MJPEG_DOCDIR, MJPEG_UNIT_DIR (relative to the prefix).
set(prefix "${CMAKE_INSTALL_PREFIX}")
# The GNU rule: /usr keeps its configuration in /etc, any other prefix in <prefix>/etc.
if(prefix STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()
set(MJPEG_FULL_BINDIR "${prefix}/${MJPEG_BINDIR}")
set(MJPEG_FULL_DOCDIR "${prefix}/${MJPEG_DOCDIR}")
set(MJPEG_FULL_SYSCONFDIR "${sysconfdir}")
configure_file("${MJPEG_DEPLOY_DIR}/systemd/mjpeg-concurrency.service.in"
               "${MJPEG_BINARY_DIR}/unit/mjpeg-concurrency.service" @ONLY)
# file(INSTALL) puts $DESTDIR in front of these absolute destinations.
file(INSTALL "${MJPEG_BINARY_DIR}/unit/mjpeg-concurrency.service"
              "${MJPEG_DEPLOY_DIR}/systemd/mjpeg-concurrency.socket"
     DESTINATION "${prefix}/${MJPEG_UNIT_DIR}")
file(INSTALL "${MJPEG_DEPLOY_DIR}/mjpeg-concurrency.conf" DESTINATION "${sysconfdir}/mjpeg-concurrency")

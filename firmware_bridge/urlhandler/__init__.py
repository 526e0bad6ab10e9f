"""pyserial URL handlers added by firmware_bridge (``serial.protocol_handler_packages``): ``sim://``."""

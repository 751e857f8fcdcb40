"""udev properties of tty devices as `udevadm info` shows them on a Raspberry Pi OS terminal:
the box's two ports, the same board in maintenance mode, another MicroPython board, a USB
serial adapter (e.g. a serial badge reader)."""

BOX = {"ID_VENDOR_ID": "2e8a", "ID_MODEL_ID": "0005", "ID_SERIAL_SHORT": "e6614c311b7e6f35",
       "ID_VENDOR": "rating-terminal", "ID_BUS": "usb", "ID_USB_DRIVER": "cdc_acm"}

BOX_DATA = {**BOX, "SUBSYSTEM": "tty", "DEVNAME": "/dev/ttyACM1", "ID_MODEL": "Rating_button_box",
            "ID_USB_INTERFACE_NUM": "02",
            "DEVPATH": "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/1-1.3/"
                       "1-1.3:1.2/tty/ttyACM1"}
BOX_REPL = {**BOX_DATA, "DEVNAME": "/dev/ttyACM0", "ID_USB_INTERFACE_NUM": "00",
            "DEVPATH": BOX_DATA["DEVPATH"].replace("1-1.3:1.2/tty/ttyACM1", "1-1.3:1.0/tty/ttyACM0")}
BOX_IN_MAINTENANCE = {**BOX_REPL, "ID_MODEL": "Board_in_FS_mode", "ID_VENDOR": "MicroPython"}
OTHER_PICO_DATA = {**BOX_DATA, "ID_MODEL": "Board_in_FS_mode", "ID_SERIAL_SHORT": "e66038b7136a2b2f"}
SERIAL_ADAPTER = {"SUBSYSTEM": "tty", "DEVNAME": "/dev/ttyUSB0", "ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6001",
                  "ID_MODEL": "FT232R_USB_UART", "ID_USB_INTERFACE_NUM": "00", "ID_SERIAL_SHORT": "A50285BI",
                  "DEVPATH": "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/"
                             "1-1.4/1-1.4:1.0/ttyUSB0/tty/ttyUSB0"}

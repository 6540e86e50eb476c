<!-- placeholder: the kiosk page is being written -->

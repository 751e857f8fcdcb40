#!/bin/sh
# Regenerate the kiosk's voice prompts in assets/sounds/ with eSpeak NG (apt-get install espeak-ng).
# The prompts are synthetic speech: a hall may replace the files with recorded ones of the same names.
set -e
cd "$(dirname "$0")/../assets/sounds"
espeak-ng -v cmn -s 150 -w invite-zh_CN.wav "请您对我的服务做出评价"
espeak-ng -v cmn -s 150 -w thanks-zh_CN.wav "感谢您的评价"
espeak-ng -v en -s 150 -w invite-en.wav "Please rate my service"
espeak-ng -v en -s 150 -w thanks-en.wav "Thank you for your rating"
ls -l *.wav

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
# A called queue ticket (排队叫号) is said from pieces: 请 … 号到本窗口办理 around its letters and digits
mkdir -p ticket
espeak-ng -v cmn -s 150 -w ticket/before-zh_CN.wav "请"
espeak-ng -v cmn -s 150 -w ticket/after-zh_CN.wav "号，到本窗口办理"
espeak-ng -v en -s 150 -w ticket/before-en.wav "Ticket"
espeak-ng -v en -s 150 -w ticket/after-en.wav "please come to this window"
for c in A B C D E F G H I J K L M N O P Q R S T U V W X Y Z; do
  espeak-ng -v en -s 150 -w "ticket/$c-en.wav" "$c"
  espeak-ng -v cmn -s 150 -w "ticket/$c-zh_CN.wav" "$c"
done
set -- 零 一 二 三 四 五 六 七 八 九
for d in 0 1 2 3 4 5 6 7 8 9; do
  espeak-ng -v en -s 150 -w "ticket/$d-en.wav" "$d"
  espeak-ng -v cmn -s 150 -w "ticket/$d-zh_CN.wav" "$1"
  shift
done
ls ticket | wc -l

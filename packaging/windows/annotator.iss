; Inno Setup script: a per-user installer around the PyInstaller folder built on Windows with
; `pyinstaller packaging\annotator.spec` (dist\annotator-app). Build: iscc packaging\windows\annotator.iss
#define AppName "Annotator"
#define AppVersion "0.1"

[Setup]
AppId={{6F1C2B7E-5A3D-4E8B-9C21-AB7D3E0F4C11}
AppName={#AppName}
AppVersion={#AppVersion}
DefaultDirName={localappdata}\Programs\Annotator
DefaultGroupName=Annotator
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=annotator-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
UninstallDisplayIcon={app}\annotator-app.exe

[Files]
Source: "..\..\dist\annotator-app\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\Annotator"; Filename: "{app}\annotator-app.exe"
Name: "{userdesktop}\Annotator"; Filename: "{app}\annotator-app.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\annotator-app.exe"; Description: "Start Annotator"; Flags: nowait postinstall skipifsilent
